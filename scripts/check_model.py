#!/usr/bin/env python3
"""Compare an exported model's sentence embeddings with reference embeddings.

    python3 scripts/check_model.py MODEL_DIR REFERENCE_JSONL [--batch-size N] [--threshold 0.999]

MODEL_DIR holds model.onnx, tokenizer.json and docchat.json (scripts/export_model.py's output);
REFERENCE_JSONL has one {"text", "embedding"} object per line (sentence-transformers, normalised).
Tokenises with the `tokenizers` package (truncation at max_seq_length, padding to the longest text
of each batch), runs ONNX Runtime on 2 threads, mean-pools over the attention mask, L2-normalises,
and prints the min/mean cosine. Exits 1 if any cosine is below the threshold.
Needs numpy, tokenizers and onnxruntime on PYTHONPATH (scripts/models.sh installs them).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def load_tokenizer(model_dir, max_seq_length):
    """tokenizer.json with truncation at max_seq_length and batch-longest (never fixed) padding."""
    path = os.path.join(model_dir, "tokenizer.json")
    tok = Tokenizer.from_file(path)
    with open(path, encoding="utf-8") as f:
        padding = json.load(f).get("padding") or {}
    pad_token = padding.get("pad_token") or next(
        (t for t in ("[PAD]", "<pad>") if tok.token_to_id(t) is not None), "[PAD]")
    pad_id = padding.get("pad_id", tok.token_to_id(pad_token) or 0)
    tok.enable_truncation(max_length=max_seq_length)
    tok.enable_padding(pad_id=pad_id, pad_token=pad_token)  # no length: pad to the batch's longest
    return tok


def load_session(model_dir, threads=2):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(os.path.join(model_dir, "model.onnx"), opts, providers=["CPUExecutionProvider"])


def embed(session, tok, texts):
    """Normalised mean-pooled embeddings of texts, as one batch."""
    encodings = tok.encode_batch(texts)
    ids = np.array([e.ids for e in encodings], dtype=np.int64)
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask}
    if any(i.name == "token_type_ids" for i in session.get_inputs()):
        feeds["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
    (hidden,) = session.run(["last_hidden_state"], feeds)
    m = mask[:, :, None].astype(np.float32)
    pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("reference")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threshold", type=float, default=0.999)
    a = ap.parse_args()

    with open(os.path.join(a.model_dir, "docchat.json"), encoding="utf-8") as f:
        meta = json.load(f)
    with open(a.reference, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    texts = [r["text"] for r in rows]
    expected = np.array([r["embedding"] for r in rows], dtype=np.float32)
    if expected.shape[1] != meta["dimension"]:
        sys.exit(f"check: reference dimension {expected.shape[1]} != model dimension {meta['dimension']}")

    tok = load_tokenizer(a.model_dir, meta["max_seq_length"])
    session = load_session(a.model_dir)
    start = time.perf_counter()
    got = np.concatenate([embed(session, tok, texts[i:i + a.batch_size])
                          for i in range(0, len(texts), a.batch_size)])
    seconds = time.perf_counter() - start

    cos = (got * expected).sum(axis=1) / np.linalg.norm(expected, axis=1)
    worst = int(np.argmin(cos))
    bad = int((cos < a.threshold).sum())
    print(f"{meta['name']}: {len(texts)} texts, batch {a.batch_size}, {seconds:.1f} s; "
          f"cosine min {cos.min():.7f} mean {cos.mean():.7f} (1-min {1 - cos.min():.1e}); "
          f"worst #{worst} {texts[worst][:60]!r}; {bad} below {a.threshold}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

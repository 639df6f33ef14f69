#!/usr/bin/env python3
"""Export a sentence-transformers checkpoint (BERT or MPNet, safetensors weights) to ONNX, without torch.

    python3 scripts/export_model.py SRC_DIR OUT_DIR [--name NAME] [--source TEXT]

SRC_DIR is a sentence-transformers folder (config.json, model.safetensors, tokenizer.json,
sentence_bert_config.json, 1_Pooling/config.json). OUT_DIR receives:
  model.onnx     inputs input_ids, attention_mask (+ token_type_ids for BERT), int64 [batch, sequence];
                 output last_hidden_state float32 [batch, sequence, hidden] (pool and normalise outside)
  tokenizer.json the checkpoint's, with fixed-length padding/truncation replaced (see tokenizer_json)
  docchat.json   name, dimension, max_seq_length, pooling, normalize, architecture, source

The graph follows Hugging Face's BertModel / MPNetModel in eval mode (no dropout, no pooler), built
node by node with onnx.helper; all sizes come from config.json. Needs numpy and onnx only.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # first opset with LayerNormalization
FLOAT_MIN = float(np.finfo(np.float32).min)  # HF's additive mask value for fp32


# ---------------------------------------------------------------------------------------------
# Checkpoint reading
# ---------------------------------------------------------------------------------------------

SAFETENSORS_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64,
                      "I64": np.int64, "I32": np.int32, "BF16": np.uint16}


def read_safetensors(path):
    """Parse a .safetensors file (8-byte header length, JSON header, raw little-endian data)."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = f.read()
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = info["dtype"]
        if dtype not in SAFETENSORS_DTYPES:
            raise SystemExit(f"export: tensor {name} has unsupported dtype {dtype}")
        start, end = info["data_offsets"]
        np_dtype = np.dtype(SAFETENSORS_DTYPES[dtype]).newbyteorder("<")
        arr = np.frombuffer(data, dtype=np_dtype, count=(end - start) // np_dtype.itemsize,
                            offset=start).reshape(info["shape"])
        if dtype == "BF16":  # bfloat16 is the top half of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        if arr.dtype.kind == "f":
            arr = arr.astype(np.float32)
        tensors[name] = arr
    return tensors


def load_weights(src, arch):
    """All tensors of the checkpoint, keyed without a leading 'bert.'/'mpnet.' style prefix."""
    path = os.path.join(src, "model.safetensors")
    if not os.path.exists(path):
        raise SystemExit(f"export: {path} not found (only single-file safetensors checkpoints are supported)")
    tensors = read_safetensors(path)
    key = "embeddings.word_embeddings.weight"
    prefix = next((k[: -len(key)] for k in tensors if k.endswith(key)), None)
    if prefix is None:
        raise SystemExit(f"export: no {key} in {path}; is this a {arch} checkpoint?")
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def read_json(path, default=None):
    if not os.path.exists(path):
        if default is None:
            raise SystemExit(f"export: {path} not found")
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def read_checkpoint_settings(src, config):
    """max_seq_length, pooling and normalisation from the sentence-transformers files."""
    st = read_json(os.path.join(src, "sentence_bert_config.json"), {})
    tok_cfg = read_json(os.path.join(src, "tokenizer_config.json"), {})
    offset = config["pad_token_id"] + 1 if config["model_type"] == "mpnet" else 0
    max_positions = config["max_position_embeddings"] - offset
    max_seq_length = st.get("max_seq_length") or min(tok_cfg.get("model_max_length", max_positions), max_positions)
    if max_seq_length > max_positions:
        raise SystemExit(f"export: max_seq_length {max_seq_length} exceeds the model's {max_positions} positions")

    pooling_cfg = read_json(os.path.join(src, "1_Pooling", "config.json"), {"pooling_mode_mean_tokens": True})
    modes = [m for m in ("mean_tokens", "cls_token", "max_tokens", "mean_sqrt_len_tokens")
             if pooling_cfg.get("pooling_mode_" + m)]
    pooling = {"mean_tokens": "mean", "cls_token": "cls", "max_tokens": "max",
               "mean_sqrt_len_tokens": "mean_sqrt_len"}[modes[0]] if len(modes) == 1 else "+".join(modes)
    dimension = pooling_cfg.get("word_embedding_dimension", config["hidden_size"])
    if dimension != config["hidden_size"]:
        raise SystemExit(f"export: pooling dimension {dimension} != hidden_size {config['hidden_size']}")

    modules = read_json(os.path.join(src, "modules.json"), [])
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    extra = [m["type"] for m in modules
             if not m.get("type", "").endswith(("Transformer", "Pooling", "Normalize"))]
    if pooling != "mean" or not normalize or extra:
        print(f"export: warning: checkpoint pooling={pooling} normalize={normalize} extra modules={extra}; "
              "docchat applies mean pooling + L2 normalisation", file=sys.stderr)
    return {"max_seq_length": int(max_seq_length), "pooling": pooling, "normalize": normalize,
            "dimension": int(dimension)}


# ---------------------------------------------------------------------------------------------
# Graph building helpers
# ---------------------------------------------------------------------------------------------

class Graph:
    """Collects nodes and initializers; op() returns the name of the node's (first) output."""

    def __init__(self):
        self.nodes, self.initializers, self.names = [], [], set()

    def unique(self, name):
        base, i = name, 1
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    def init(self, name, array):
        name = self.unique(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const(self, name, value, dtype=np.float32):
        return self.init(name, np.array(value, dtype=dtype))

    def op(self, op_type, inputs, name, n_outputs=1, **attrs):
        name = self.unique(name)
        outputs = [name] + [self.unique(f"{name}:{i}") for i in range(1, n_outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, outputs, name=name, **attrs))
        return outputs[0] if n_outputs == 1 else outputs


def linear(g, x, w, prefix):
    """x @ W^T + b for a torch Linear stored as prefix.weight [out, in] / prefix.bias [out]."""
    weight = g.init(prefix + ".weight", w[prefix + ".weight"].T)
    y = g.op("MatMul", [x, weight], prefix + "/MatMul")
    return g.op("Add", [y, g.init(prefix + ".bias", w[prefix + ".bias"])], prefix + "/Add")


def layer_norm(g, x, w, prefix, eps):
    return g.op("LayerNormalization",
                [x, g.init(prefix + ".weight", w[prefix + ".weight"]), g.init(prefix + ".bias", w[prefix + ".bias"])],
                prefix + "/LayerNorm", axis=-1, epsilon=float(eps))


def activation(g, x, kind, prefix):
    """Hugging Face ACT2FN: 'gelu' is the exact erf form, 'gelu_new'/'gelu_pytorch_tanh' the tanh one."""
    if kind == "gelu":  # 0.5 * x * (1 + erf(x / sqrt(2))), in the node order ORT's GeluFusion matches
        t = g.op("Div", [x, g.const(prefix + "/sqrt2", math.sqrt(2.0))], prefix + "/Div")
        t = g.op("Erf", [t], prefix + "/Erf")
        t = g.op("Add", [t, g.const(prefix + "/one", 1.0)], prefix + "/Add")
        t = g.op("Mul", [x, t], prefix + "/Mul")
        return g.op("Mul", [t, g.const(prefix + "/half", 0.5)], prefix + "/Mul_half")
    if kind in ("gelu_new", "gelu_pytorch_tanh"):  # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
        x3 = g.op("Pow", [x, g.const(prefix + "/three", 3.0)], prefix + "/Pow")
        t = g.op("Mul", [x3, g.const(prefix + "/c", 0.044715)], prefix + "/Mul_c")
        t = g.op("Add", [x, t], prefix + "/Add_x")
        t = g.op("Mul", [t, g.const(prefix + "/k", math.sqrt(2.0 / math.pi))], prefix + "/Mul_k")
        t = g.op("Tanh", [t], prefix + "/Tanh")
        t = g.op("Add", [t, g.const(prefix + "/one", 1.0)], prefix + "/Add")
        t = g.op("Mul", [x, t], prefix + "/Mul")
        return g.op("Mul", [t, g.const(prefix + "/half", 0.5)], prefix + "/Mul_half")
    if kind == "relu":
        return g.op("Relu", [x], prefix + "/Relu")
    raise SystemExit(f"export: unsupported hidden_act {kind!r}")


# ---------------------------------------------------------------------------------------------
# Model blocks
# ---------------------------------------------------------------------------------------------

def sequence_length(g):
    """[seq] as a 1-D int64 tensor (Shape with start/end, so no Gather on shapes)."""
    return g.op("Shape", ["input_ids"], "sequence/length", start=1, end=2)


def sequence_prefix(g, table, name):
    """table[:seq] along axis 0."""
    zero = g.const(name + "/start", [0], np.int64)
    return g.op("Slice", [table, zero, sequence_length(g), zero], name + "/Slice")


def bert_embeddings(g, w, cfg):
    """word + absolute position + token type embeddings, then LayerNorm (BertEmbeddings)."""
    if cfg.get("position_embedding_type", "absolute") != "absolute":
        raise SystemExit(f"export: position_embedding_type {cfg['position_embedding_type']} is not supported")
    words = g.op("Gather", [g.init("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]),
                            "input_ids"], "embeddings/word")
    types = g.op("Gather", [g.init("embeddings.token_type_embeddings.weight",
                                   w["embeddings.token_type_embeddings.weight"]), "token_type_ids"],
                 "embeddings/token_type")
    positions = sequence_prefix(g, g.init("embeddings.position_embeddings.weight",
                                          w["embeddings.position_embeddings.weight"]),
                                "embeddings/position")  # [seq, hidden]: positions 0..seq-1, broadcast over the batch
    x = g.op("Add", [words, types], "embeddings/Add_type")
    x = g.op("Add", [x, positions], "embeddings/Add_position")
    return layer_norm(g, x, w, "embeddings.LayerNorm", cfg["layer_norm_eps"])


def mpnet_position_ids(g, cfg):
    """HF create_position_ids_from_input_ids: padding_idx + cumsum(not pad) for real tokens, padding_idx for pads."""
    pad = g.const("embeddings/padding_idx", cfg["pad_token_id"], np.int64)
    is_pad = g.op("Equal", ["input_ids", pad], "embeddings/is_pad")
    mask = g.op("Cast", [g.op("Not", [is_pad], "embeddings/not_pad")], "embeddings/mask", to=TensorProto.INT64)
    count = g.op("CumSum", [mask, g.const("embeddings/axis1", 1, np.int64)], "embeddings/CumSum")
    count = g.op("Mul", [count, mask], "embeddings/masked_count")
    return g.op("Add", [count, pad], "embeddings/position_ids")


def mpnet_embeddings(g, w, cfg):
    """word + position embeddings (positions counted from padding_idx + 1), then LayerNorm (MPNetEmbeddings)."""
    words = g.op("Gather", [g.init("embeddings.word_embeddings.weight", w["embeddings.word_embeddings.weight"]),
                            "input_ids"], "embeddings/word")
    positions = g.op("Gather", [g.init("embeddings.position_embeddings.weight",
                                       w["embeddings.position_embeddings.weight"]), mpnet_position_ids(g, cfg)],
                     "embeddings/position")
    x = g.op("Add", [words, positions], "embeddings/Add_position")
    return layer_norm(g, x, w, "embeddings.LayerNorm", cfg["layer_norm_eps"])


def attention_mask_bias(g):
    """(1 - attention_mask) * float32.min as [batch, 1, 1, seq], added to every layer's scores."""
    m = g.op("Cast", ["attention_mask"], "mask/Cast", to=TensorProto.FLOAT)
    m = g.op("Sub", [g.const("mask/one", 1.0), m], "mask/Sub")
    m = g.op("Mul", [m, g.const("mask/min", FLOAT_MIN)], "mask/Mul")
    return g.op("Unsqueeze", [m, g.const("mask/axes", [1, 2], np.int64)], "mask/Unsqueeze")


def relative_position_buckets(max_len, num_buckets, max_distance=128):
    """MPNet's relative_position_bucket (bidirectional, in float32 like torch) for relative
    positions -(max_len-1) .. max_len-1; index i holds the bucket of relative position i-(max_len-1)."""
    relative = np.arange(-(max_len - 1), max_len, dtype=np.int64)
    n = -relative
    half = num_buckets // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    with np.errstate(divide="ignore"):
        scaled = (np.log(n.astype(np.float32) / np.float32(max_exact))
                  / np.float32(math.log(max_distance / max_exact)) * np.float32(half - max_exact))
    large = max_exact + np.where(n < max_exact, 0, scaled).astype(np.int64)
    large = np.minimum(large, half - 1)
    return ret + np.where(n < max_exact, n, large)


def mpnet_relative_position_bias(g, w, cfg):
    """[1, heads, seq, seq] bias from encoder.relative_attention_bias, shared by all layers
    (MPNetEncoder.compute_position_bias uses plain 0..seq-1 positions)."""
    max_len = cfg["max_position_embeddings"]
    buckets = g.init("encoder/relative_buckets",
                     relative_position_buckets(max_len, cfg.get("relative_attention_num_buckets", 32)))
    pos = sequence_prefix(g, g.const("encoder/arange", np.arange(max_len), np.int64), "encoder/positions")
    rel = g.op("Sub", [g.op("Unsqueeze", [pos, g.const("encoder/axis0", [0], np.int64)], "encoder/memory"),
                       g.op("Unsqueeze", [pos, g.const("encoder/axis1", [1], np.int64)], "encoder/context")],
               "encoder/relative_position")  # [seq, seq]: memory - context
    rel = g.op("Add", [rel, g.const("encoder/rel_offset", max_len - 1, np.int64)], "encoder/rel_index")
    bucket = g.op("Gather", [buckets, rel], "encoder/bucket")
    table = g.init("encoder.relative_attention_bias.weight", w["encoder.relative_attention_bias.weight"])
    values = g.op("Gather", [table, bucket], "encoder/bias_values")  # [seq, seq, heads]
    values = g.op("Transpose", [values], "encoder/bias_heads", perm=[2, 0, 1])
    return g.op("Unsqueeze", [values, g.const("encoder/axis0b", [0], np.int64)], "encoder/position_bias")


def self_attention(g, x, bias, w, cfg, names):
    """Multi-head scaled dot-product attention + output projection (before the residual LayerNorm).
    names: the checkpoint's prefixes for the query, key, value and output projections."""
    heads = cfg["num_attention_heads"]
    head_dim = cfg["hidden_size"] // heads
    split = g.const(names["query"] + "/heads_shape", [0, 0, heads, head_dim], np.int64)

    def project(which, perm):
        y = linear(g, x, w, names[which])
        y = g.op("Reshape", [y, split], names[which] + "/Reshape")
        return g.op("Transpose", [y], names[which] + "/Transpose", perm=perm)

    q = project("query", [0, 2, 1, 3])  # [batch, heads, seq, head_dim]
    k = project("key", [0, 2, 3, 1])  # [batch, heads, head_dim, seq]
    v = project("value", [0, 2, 1, 3])
    scores = g.op("MatMul", [q, k], names["query"] + "/scores")
    scores = g.op("Div", [scores, g.const(names["query"] + "/sqrt_head_dim", math.sqrt(head_dim))],
                  names["query"] + "/scale")
    scores = g.op("Add", [scores, bias], names["query"] + "/bias")
    probs = g.op("Softmax", [scores], names["query"] + "/Softmax", axis=-1)
    context = g.op("MatMul", [probs, v], names["value"] + "/context")
    context = g.op("Transpose", [context], names["value"] + "/context_T", perm=[0, 2, 1, 3])
    context = g.op("Reshape", [context, g.const(names["value"] + "/merge_shape", [0, 0, cfg["hidden_size"]],
                                                np.int64)], names["value"] + "/merge")
    return linear(g, context, w, names["output"])


def encoder_layer(g, x, bias, w, cfg, i):
    """One post-LayerNorm transformer layer (BertLayer / MPNetLayer)."""
    p = f"encoder.layer.{i}"
    if cfg["model_type"] == "bert":
        names = {"query": p + ".attention.self.query", "key": p + ".attention.self.key",
                 "value": p + ".attention.self.value", "output": p + ".attention.output.dense"}
        attn_norm = p + ".attention.output.LayerNorm"
    else:
        names = {"query": p + ".attention.attn.q", "key": p + ".attention.attn.k",
                 "value": p + ".attention.attn.v", "output": p + ".attention.attn.o"}
        attn_norm = p + ".attention.LayerNorm"
    eps = cfg["layer_norm_eps"]
    a = self_attention(g, x, bias, w, cfg, names)
    x = layer_norm(g, g.op("Add", [a, x], attn_norm + "/residual"), w, attn_norm, eps)
    h = activation(g, linear(g, x, w, p + ".intermediate.dense"), cfg["hidden_act"], p + ".intermediate.act")
    h = linear(g, h, w, p + ".output.dense")
    return layer_norm(g, g.op("Add", [h, x], p + ".output.LayerNorm/residual"), w, p + ".output.LayerNorm", eps)


def build_model(w, cfg):
    arch = cfg["model_type"]
    g = Graph()
    seq_input = lambda name: helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
    inputs = [seq_input("input_ids"), seq_input("attention_mask")]
    bias = attention_mask_bias(g)
    if arch == "bert":
        inputs.append(seq_input("token_type_ids"))
        x = bert_embeddings(g, w, cfg)
    else:
        x = mpnet_embeddings(g, w, cfg)
        bias = g.op("Add", [mpnet_relative_position_bias(g, w, cfg), bias], "encoder/attention_bias")
    for i in range(cfg["num_hidden_layers"]):
        x = encoder_layer(g, x, bias, w, cfg, i)
    g.nodes.append(helper.make_node("Identity", [x], ["last_hidden_state"], name="last_hidden_state"))
    output = helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                           ["batch", "sequence", cfg["hidden_size"]])
    graph = helper.make_graph(g.nodes, f"{arch}_encoder", inputs, [output], g.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="docchat export_model.py")
    model.ir_version = 8  # opset 17's IR version; readable by any ONNX Runtime >= 1.12
    return model


# ---------------------------------------------------------------------------------------------
# Output files
# ---------------------------------------------------------------------------------------------

def tokenizer_json(src, out, max_seq_length):
    """Copy tokenizer.json, replacing fixed-length padding with batch-longest padding and setting
    truncation to max_seq_length (sentence-transformers' behaviour; the shipped files pad to 128)."""
    tok = read_json(os.path.join(src, "tokenizer.json"))
    changes = []
    if tok.get("truncation") is None or tok["truncation"].get("max_length") != max_seq_length:
        old = tok.get("truncation")
        tok["truncation"] = dict(old or {"strategy": "LongestFirst", "stride": 0}, max_length=max_seq_length)
        changes.append(f"truncation {old and old.get('max_length')} -> {max_seq_length}")
    pad = tok.get("padding")
    if pad is not None and pad.get("strategy") != "BatchLongest":
        changes.append(f"padding {pad['strategy']} -> BatchLongest")
        pad["strategy"] = "BatchLongest"
    with open(os.path.join(out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tok, f, ensure_ascii=False)
    return changes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--name", help="model name in docchat.json (default: OUT_DIR's basename)")
    ap.add_argument("--source", help="provenance text for docchat.json (default: SRC_DIR's basename)")
    a = ap.parse_args()

    cfg = read_json(os.path.join(a.src, "config.json"))
    arch = cfg.get("model_type")
    if arch not in ("bert", "mpnet"):
        raise SystemExit(f"export: model_type {arch!r} is not supported (bert, mpnet)")
    cfg.setdefault("layer_norm_eps", 1e-12 if arch == "bert" else 1e-5)
    cfg.setdefault("hidden_act", "gelu")
    if arch == "mpnet":
        cfg.setdefault("pad_token_id", 1)
    settings = read_checkpoint_settings(a.src, cfg)
    weights = load_weights(a.src, arch)

    model = build_model(weights, cfg)
    onnx.checker.check_model(model)
    os.makedirs(a.out, exist_ok=True)
    tmp = os.path.join(a.out, "model.onnx.tmp")
    onnx.save_model(model, tmp)
    os.replace(tmp, os.path.join(a.out, "model.onnx"))
    changes = tokenizer_json(a.src, a.out, settings["max_seq_length"])

    name = a.name or os.path.basename(os.path.normpath(a.out))
    meta = {"name": name, "dimension": settings["dimension"], "max_seq_length": settings["max_seq_length"],
            "pooling": settings["pooling"], "normalize": settings["normalize"], "architecture": arch,
            "source": a.source or os.path.basename(os.path.normpath(a.src))}
    with open(os.path.join(a.out, "docchat.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    size = os.path.getsize(os.path.join(a.out, "model.onnx"))
    print(f"export: {name}: {arch}, {cfg['num_hidden_layers']} layers, hidden {cfg['hidden_size']}, "
          f"max_seq_length {settings['max_seq_length']}, {len(model.graph.node)} nodes, {size / 1e6:.1f} MB"
          + (f"; tokenizer.json: {', '.join(changes)}" if changes else ""))


if __name__ == "__main__":
    main()

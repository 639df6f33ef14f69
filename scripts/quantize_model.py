#!/usr/bin/env python3
"""Fuse and int8-quantize an exported BERT sentence-embedding model for fast CPU inference.

    PYTHONPATH=.cache/py/export:.cache/py/onnxruntime:.cache/py/quant \
        python3 scripts/quantize_model.py FP32_DIR OUT_DIR [options]

FP32_DIR is scripts/export_model.py's output (model.onnx, tokenizer.json, docchat.json). Steps:
  1. graph clean-up so that ONNX Runtime's transformer optimizer recognises the export: the
     attention-mask bias `Unsqueeze(Mul(Sub(1, Cast(mask)), min))` is rewritten into the node order
     of a Hugging Face export, `Mul(Sub(1, Cast(Unsqueeze(Unsqueeze(mask)))), min)` (same values);
  2. onnxruntime.transformers.optimizer (model_type bert, opt_level 0 = pure-Python fusions, offline,
     CPU): Attention (packed QKV), SkipLayerNormalization, BiasGelu;
  3. unless --no-quantize: onnxruntime.quantization.quantize_dynamic, int8 weights per output channel
     (MatMulInteger/DynamicQuantizeMatMul and QAttention, activations quantized at run time);
     --exclude keeps the named nodes in fp32 (default: DEFAULT_EXCLUDE below, the MatMuls found most
     sensitive by --sensitivity); --reduce-range uses 7-bit weights.
  4. copies tokenizer.json and writes docchat.json (the input's fields, new name, "quantization").

--sensitivity TEXTS_FILE (one text per line) prints, for each quantizable node, how much excluding
it alone from the int8 model raises the cosine to the fp32 model's embeddings of those texts, and
exits; that is how DEFAULT_EXCLUDE was chosen (on SciFact corpus texts, not on the reference set).

Python packages: numpy, onnx, tokenizers, onnxruntime (scripts/models.sh installs them under
.cache/py/export and .cache/py/onnxruntime) plus the optimizer's symbolic shape inference needs,
installed with
    python3 -m pip install -q --no-deps --target .cache/py/quant sympy==1.14.0 mpmath==1.3.0
(onnxruntime 1.31.1's optimizer and quantizer need nothing else: coloredlogs/humanfriendly are
only imported by the optimizer's command-line entry point, packaging and ml_dtypes are in .cache/py/export).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper

# MatMuls of the fused graph kept in fp32 by default (names are those of the fp32 export, which
# the optimizer keeps for unfused MatMuls). Chosen with --sensitivity; see the docstring.
DEFAULT_EXCLUDE = []


# ---------------------------------------------------------------------------------------------
# Step 1: make the export's attention mask look like a Hugging Face export
# ---------------------------------------------------------------------------------------------

def rewrite_mask(model):
    """Cast(mask) -> Sub(1, .) -> Mul(., min) -> Unsqueeze(axes [1, 2])  ==>
    Unsqueeze(1) -> Unsqueeze(2) -> Cast -> Sub(1, .) -> Mul(., min), same output name.
    ORT's FusionAttention only matches the latter order. Returns True if rewritten."""
    g = model.graph
    consumers = lambda name: [n for n in g.node if name in n.input]
    casts = [n for n in g.node if n.op_type == "Cast" and n.input[0] == "attention_mask"]
    if len(casts) != 1:
        return False
    cast = casts[0]
    chain = [cast]
    for op in ("Sub", "Mul", "Unsqueeze"):
        nxt = consumers(chain[-1].output[0])
        if len(nxt) != 1 or nxt[0].op_type != op:
            return False
        chain.append(nxt[0])
    _, sub, mul, unsq = chain
    if sub.input[1] != cast.output[0] or mul.input[0] != sub.output[0]:
        return False
    inits = {i.name: i for i in g.initializer}
    axes = numpy_helper.to_array(inits[unsq.input[1]]).tolist() if unsq.input[1] in inits else None
    if axes != [1, 2]:
        return False
    position = list(g.node).index(cast)
    for n in chain:
        g.node.remove(n)
    g.initializer.extend([numpy_helper.from_array(np.array([1], np.int64), "mask/hf_axis1"),
                          numpy_helper.from_array(np.array([2], np.int64), "mask/hf_axis2")])
    new = [helper.make_node("Unsqueeze", ["attention_mask", "mask/hf_axis1"], ["mask/hf_u1"], name="mask/Unsqueeze1"),
           helper.make_node("Unsqueeze", ["mask/hf_u1", "mask/hf_axis2"], ["mask/hf_u2"], name="mask/Unsqueeze2"),
           helper.make_node("Cast", ["mask/hf_u2"], ["mask/hf_float"], name="mask/Cast",
                            to=onnx.TensorProto.FLOAT),
           helper.make_node("Sub", [sub.input[0], "mask/hf_float"], ["mask/hf_inverted"], name="mask/Sub"),
           helper.make_node("Mul", ["mask/hf_inverted", mul.input[1]], [unsq.output[0]], name="mask/Mul")]
    for i, n in enumerate(new):
        g.node.insert(position + i, n)
    return True


# ---------------------------------------------------------------------------------------------
# Step 2: ORT transformer optimizer
# ---------------------------------------------------------------------------------------------

def model_sizes(fp32_dir, model):
    """(num_heads, hidden_size): docchat.json / config.json if they say, else from the graph."""
    for name in ("docchat.json", "config.json"):
        path = os.path.join(fp32_dir, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                cfg = json.load(f)
            heads = cfg.get("num_attention_heads") or cfg.get("num_heads")
            hidden = cfg.get("hidden_size") or cfg.get("dimension")
            if heads and hidden:
                return int(heads), int(hidden)
    # the export's per-head Reshape constants are [0, 0, heads, head_dim]
    inits = {i.name: i for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Reshape" and n.input[1] in inits:
            shape = numpy_helper.to_array(inits[n.input[1]]).tolist()
            if len(shape) == 4 and shape[:2] == [0, 0] and shape[2] > 0:
                return int(shape[2]), int(shape[2] * shape[3])
    raise SystemExit("quantize: cannot determine num_heads/hidden_size; pass --num-heads/--hidden-size")


def fuse(model, num_heads, hidden_size):
    from onnxruntime.transformers import optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions
    import logging
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    options = FusionOptions("bert")
    opt = optimizer.optimize_model(model, model_type="bert", num_heads=num_heads, hidden_size=hidden_size,
                                   opt_level=0, use_gpu=False, optimization_options=options)
    stats = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    return opt, stats


# ---------------------------------------------------------------------------------------------
# Step 2b: SmoothQuant-style per-channel rescaling (optional, --smooth ALPHA)
# ---------------------------------------------------------------------------------------------

class Embedder:
    """Tokenise + run an ONNX model + mean-pool + L2-normalise (also returns extra graph outputs)."""

    def __init__(self, model, tok_dir, max_seq_length, extra_outputs=()):
        import onnxruntime as ort
        from tokenizers import Tokenizer
        if extra_outputs:
            model = onnx.ModelProto.FromString(model.SerializeToString())
            for name in extra_outputs:
                model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        opts.inter_op_num_threads = 1
        data = model if isinstance(model, str) else model.SerializeToString()
        self.sess = ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.sess.get_outputs()]
        self.tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
        self.tok.enable_truncation(max_length=int(max_seq_length))
        self.tok.enable_padding(pad_id=self.tok.token_to_id("[PAD]") or 0, pad_token="[PAD]")

    def run(self, texts):
        enc = self.tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], np.int64)
        mask = np.array([e.attention_mask for e in enc], np.int64)
        outs = self.sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
        m = mask[:, :, None].astype(np.float32)
        p = (outs[0] * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return p / np.linalg.norm(p, axis=1, keepdims=True), dict(zip(self.names[1:], outs[1:])), mask.astype(bool)

    def embed(self, texts, batch=32):
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), 0), np.float32)
        parts = [self.run([texts[i] for i in order[k:k + batch]])[0] for k in range(0, len(texts), batch)]
        out = np.concatenate(parts)
        res = np.empty_like(out)
        res[order] = out
        return res


def activation_absmax(model, tok_dir, max_seq_length, texts, tensor_names):
    """Per-channel max |x| of the named tensors over the real (unpadded) tokens of texts."""
    emb = Embedder(model, tok_dir, max_seq_length, extra_outputs=tensor_names)
    texts = sorted(texts, key=len)
    amax = {}
    for k in range(0, len(texts), 16):
        _, extra, mask = emb.run(texts[k:k + 16])
        for name, x in extra.items():
            v = np.abs(x[mask]).max(axis=0)
            amax[name] = np.maximum(amax[name], v) if name in amax else v
    return amax


SMOOTH_SITES = ("qkv", "ffn1", "ffn2", "out")


def site_kind(node, producer):
    """qkv: an Attention node; out: a MatMul on an Attention output; ffn2: a MatMul on a Gelu output;
    ffn1: another MatMul (on a LayerNorm output)."""
    if node.op_type == "Attention":
        return "qkv"
    src = producer.get(node.input[0])
    kind = src.op_type if src is not None else ""
    if kind == "Attention":
        return "out"
    if "Gelu" in kind:
        return "ffn2"
    return "ffn1"


def smooth(model, amax, alpha, sites=("qkv", "ffn1"), skip=()):
    """Divide each quantized MatMul/Attention input channel j by s_j = amax_j^alpha / wmax_j^(1-alpha)
    and multiply row j of its weight by s_j (SmoothQuant), so that activation outliers move into the
    per-channel-quantized weights. The division is folded into the value projection when the input is
    an Attention output (the attention context is linear in V), else it is a Mul node. Returns the
    number of rescaled inputs."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}

    def get(name):
        return numpy_helper.to_array(inits[name]).astype(np.float32)

    def put(name, arr):
        inits[name].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), name))

    done = 0
    for node in list(g.node):
        if node.name in skip or node.op_type not in ("MatMul", "Attention") or node.input[1] not in inits:
            continue
        if site_kind(node, producer) not in sites:
            continue
        x = node.input[0]
        if x not in amax:
            continue
        w = get(node.input[1])  # [in, out]
        a = np.maximum(amax[x], 1e-5)
        s = a ** alpha / np.maximum(np.abs(w).max(axis=1), 1e-5) ** (1 - alpha)
        s = s / np.exp(np.log(s).mean())  # geometric mean 1: keep magnitudes familiar
        put(node.input[1], w * s[:, None])
        src = producer.get(x)
        if src is not None and src.op_type == "Attention" and len([n for n in g.node if x in n.input]) == 1:
            qkv_w, qkv_b = get(src.input[1]), get(src.input[2])
            hidden = qkv_w.shape[1] // 3
            qkv_w[:, 2 * hidden:] /= s
            qkv_b[2 * hidden:] /= s
            put(src.input[1], qkv_w)
            put(src.input[2], qkv_b)
        else:
            scale = node.name + "/smooth_scale"
            g.initializer.append(numpy_helper.from_array((1.0 / s).astype(np.float32), scale))
            inits[scale] = g.initializer[-1]
            mul = helper.make_node("Mul", [x, scale], [x + "/smoothed_for_" + node.name], name=node.name + "/smooth")
            g.node.insert(list(g.node).index(node), mul)
            node.input[0] = mul.output[0]
        done += 1
    return done


# ---------------------------------------------------------------------------------------------
# Step 3: dynamic int8 quantization
# ---------------------------------------------------------------------------------------------

def quantizable_nodes(model):
    return [n.name for n in model.graph.node if n.op_type in ("MatMul", "Attention")
            and any(i.name == n.input[1] for i in model.graph.initializer)]


def quantize(fused_path, out_path, exclude, per_channel=True, reduce_range=False, weight_type="int8",
             activation_symmetric=False):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    quantize_dynamic(fused_path, out_path,
                     weight_type=QuantType.QInt8 if weight_type == "int8" else QuantType.QUInt8,
                     per_channel=per_channel, reduce_range=reduce_range,
                     op_types_to_quantize=["MatMul", "Attention"],
                     nodes_to_exclude=list(exclude),
                     extra_options={"MatMulConstBOnly": True, "ActivationSymmetric": activation_symmetric,
                                    "DefaultTensorType": onnx.TensorProto.FLOAT})  # type of outputs of contrib ops


def describe(a, exclude, stats):
    if a.no_quantize:
        return "fp32, ORT transformer fusions (" + ", ".join(f"{k} x{v}" for k, v in stats.items()) + ")"
    parts = ["dynamic int8 (quantize_dynamic)",
             f"{'u' if a.weight_type == 'uint8' else 's'}8 weights {'per-channel' if a.per_channel else 'per-tensor'}",
             "7-bit weights (reduce_range)" if a.reduce_range else "8-bit range",
             "after ORT transformer fusions"]
    if exclude:
        parts.append(f"{len(exclude)} sensitive nodes kept fp32: " + ", ".join(exclude))
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# --sensitivity
# ---------------------------------------------------------------------------------------------

def sensitivity(fused_path, tok_dir, meta, texts_file, a, base_exclude):
    import onnxruntime as ort
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(os.path.join(tok_dir, "tokenizer.json"))
    tok.enable_truncation(max_length=int(meta.get("max_seq_length", 256)))
    tok.enable_padding(pad_id=tok.token_to_id("[PAD]") or 0, pad_token="[PAD]")
    with open(texts_file, encoding="utf-8") as f:
        texts = [line.strip() for line in f if line.strip()][: a.sensitivity_texts]
    texts.sort(key=len)

    def embed(path):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 2
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        out = []
        for i in range(0, len(texts), 32):
            enc = tok.encode_batch(texts[i:i + 32])
            ids = np.array([e.ids for e in enc], np.int64)
            mask = np.array([e.attention_mask for e in enc], np.int64)
            (h,) = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
            m = mask[:, :, None].astype(np.float32)
            p = (h * m).sum(1) / m.sum(1)
            out.append(p / np.linalg.norm(p, axis=1, keepdims=True))
        return np.concatenate(out)

    ref = embed(fused_path)
    tmp = tempfile.mkdtemp(prefix="quant-sens-")
    q = os.path.join(tmp, "q.onnx")

    def score(exclude):
        quantize(fused_path, q, exclude, a.per_channel, a.reduce_range, a.weight_type, a.activation_symmetric)
        c = (embed(q) * ref).sum(1)
        return float(c.min()), float(c.mean())

    base = score(base_exclude)
    print(f"all int8 (excluding {len(base_exclude)}): cosine to fp32 min {base[0]:.5f} mean {base[1]:.6f}", flush=True)
    rows = []
    for name in quantizable_nodes(onnx.load(fused_path)):
        if name in base_exclude:
            continue
        s = score(base_exclude + [name])
        rows.append((s[1] - base[1], s[0] - base[0], name))
        print(f"  exclude {name:60s} min {s[0]:.5f} mean {s[1]:.6f}", flush=True)
    print("ranked by mean-cosine gain:")
    for dmean, dmin, name in sorted(rows, reverse=True):
        print(f"  {dmean:+.6f} mean {dmin:+.5f} min  {name}")
    shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fp32_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--name", help="model name for docchat.json (default: OUT_DIR's basename)")
    ap.add_argument("--no-quantize", action="store_true", help="stop after the fusions (fused fp32 model)")
    ap.add_argument("--per-tensor", dest="per_channel", action="store_false", help="per-tensor weight scales")
    ap.add_argument("--reduce-range", action="store_true", help="7-bit weights for MatMuls (QAttention always is)")
    ap.add_argument("--weight-type", choices=["int8", "uint8"], default="int8")
    ap.add_argument("--activation-symmetric", action="store_true")
    ap.add_argument("--exclude", nargs="*", default=None,
                    help="node names kept in fp32 (default: the built-in list; '--exclude' alone: none)")
    ap.add_argument("--num-heads", type=int)
    ap.add_argument("--hidden-size", type=int)
    ap.add_argument("--sensitivity", metavar="TEXTS_FILE", help="rank nodes by quantization sensitivity and exit")
    ap.add_argument("--sensitivity-texts", type=int, default=256)
    a = ap.parse_args()
    exclude = DEFAULT_EXCLUDE if a.exclude is None else a.exclude

    with open(os.path.join(a.fp32_dir, "docchat.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("architecture", "bert") != "bert":
        sys.exit(f"quantize: architecture {meta.get('architecture')!r} is not supported (bert only)")
    model = onnx.load(os.path.join(a.fp32_dir, "model.onnx"))
    heads, hidden = model_sizes(a.fp32_dir, model)
    heads, hidden = a.num_heads or heads, a.hidden_size or hidden
    rewritten = rewrite_mask(model)
    fused, stats = fuse(model, heads, hidden)
    print(f"quantize: mask rewritten: {rewritten}; fused: {stats}", file=sys.stderr)
    if not stats.get("Attention"):
        print("quantize: warning: no Attention fusion", file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="quant-")
    try:
        fused_path = os.path.join(tmp, "fused.onnx")
        fused.save_model_to_file(fused_path)  # adds the com.microsoft opset import
        fused = onnx.load(fused_path)
        if a.sensitivity:
            sensitivity(fused_path, a.fp32_dir, meta, a.sensitivity, a, list(exclude))
            return
        unknown = set(exclude) - set(quantizable_nodes(fused))
        if unknown and not a.no_quantize:
            sys.exit(f"quantize: --exclude names not in the fused graph: {sorted(unknown)}")
        os.makedirs(a.out_dir, exist_ok=True)
        out_model = os.path.join(a.out_dir, "model.onnx")
        if a.no_quantize:
            shutil.copyfile(fused_path, out_model)
        else:
            quantize(fused_path, out_model, exclude, a.per_channel, a.reduce_range, a.weight_type,
                     a.activation_symmetric)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.copyfile(os.path.join(a.fp32_dir, "tokenizer.json"), os.path.join(a.out_dir, "tokenizer.json"))
    meta = dict(meta)
    meta["name"] = a.name or os.path.basename(os.path.normpath(a.out_dir))
    meta["quantization"] = describe(a, exclude, stats)
    with open(os.path.join(a.out_dir, "docchat.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"quantize: wrote {a.out_dir} ({os.path.getsize(out_model) / 1e6:.1f} MB): {meta['quantization']}")


if __name__ == "__main__":
    main()

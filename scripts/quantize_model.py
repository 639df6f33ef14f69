#!/usr/bin/env python3
"""Fuse and int8-quantize an exported BERT sentence-embedding model for fast CPU inference.

    PYTHONPATH=.cache/py/export:.cache/py/onnxruntime:.cache/py/quant \
        python3 scripts/quantize_model.py FP32_DIR OUT_DIR [options]

FP32_DIR is scripts/export_model.py's output (model.onnx, tokenizer.json, docchat.json); OUT_DIR
receives model.onnx, tokenizer.json (copied) and docchat.json (FP32_DIR's fields, the new name and
"quantization": what was done). Steps:
  1. the export's attention-mask bias `Unsqueeze(Mul(Sub(1, Cast(mask)), min))` is rewritten into the
     node order of a Hugging Face export, `Mul(Sub(1, Cast(Unsqueeze(Unsqueeze(mask)))), min)` (same
     values), which is the pattern ONNX Runtime's attention fusion matches;
  2. onnxruntime.transformers.optimizer (model_type bert; num_heads/hidden_size from docchat.json or
     config.json, else from the graph's per-head Reshape; opt_level 0 = its pure-Python fusions, so it
     runs offline and needs no GPU): Attention (packed QKV), SkipLayerNormalization, BiasGelu.
     --no-quantize stops here (the "fused fp32" model);
  3. outlier handling, from per-channel activation maxima measured on calibration texts (a built-in
     set of ~40 mixed texts, or --calib FILE):
       - SmoothQuant (--smooth-alpha, default 0.5) on the inputs of QKV (Attention) and the FFN's first
         MatMul, i.e. on LayerNorm outputs, whose few huge channels (e.g. channel 99 at ~30 where the
         median channel peaks at ~2) otherwise set the per-tensor scale of the run-time activation
         quantization: input channel j is divided by s_j = amax_j^a / wmax_j^(1-a) (a Mul node) and row
         j of the weight multiplied by s_j;
       - the k (--outliers, default 4) largest GELU channels of each FFN are taken out of the int8 path:
         their FFN1 weight columns and biases are zeroed (GELU(0) = 0) and a tiny fp32 side branch
         BiasGelu(x @ W1[:, O], b1[O]) @ W2[O, :] is added to the FFN output (LLM.int8()-style);
     --plain skips both (plain dynamic per-channel int8, as in ENVIRONMENT.md);
  4. onnxruntime.quantization.quantize_dynamic: weights quantized per output channel, activations at
     run time (DynamicQuantizeLinear, u8 per tensor) for every MatMul with a constant weight and every
     Attention (QAttention), except the fp32 side branches.
     Weights are s8 with 7-bit range (reduce_range): without VNNI (AVX2 only, as on the build
     machines) ONNX Runtime's u8 x s8 kernel sums pairs of products in int16 (vpmaddubsw) and
     saturates with full-range s8 weights once smoothing has evened out the activations.

Python packages: numpy, onnx, tokenizers, onnxruntime==1.31.1 (scripts/models.sh installs them under
.cache/py/export and .cache/py/onnxruntime) and, for the optimizer's symbolic shape inference,
    python3 -m pip install -q --no-deps --target .cache/py/quant sympy==1.14.0 mpmath==1.3.0
Nothing else is needed: coloredlogs/humanfriendly are only imported by the optimizer's command-line
entry point, packaging and ml_dtypes are already in .cache/py/export.

Reproduce docchat's default int8 model from the fp32 export:
    PYTHONPATH=.cache/py/export:.cache/py/onnxruntime:.cache/py/quant python3 scripts/quantize_model.py \
        .cache/models/all-MiniLM-L6-v2-fp32 .cache/models/all-MiniLM-L6-v2-int8
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

# Calibration texts for the activation maxima (step 3). Written for this script (not taken from the
# reference set or any benchmark): queries, sentences, code, numbers, other languages, and passages of
# ~100-130 word-pieces; pairs of passages are also joined to reach ~230 word-pieces.
CALIBRATION_TEXTS = [
    "how do I reset my password",
    "What is the capital of Australia?",
    "best way to store fresh herbs",
    "symptoms of vitamin D deficiency",
    "rust borrow checker error cannot move out of borrowed content",
    "Is coffee bad for your heart?",
    "quarterly revenue growth 2023",
    "hello",
    "Thanks!",
    "error 404",
    "PostgreSQL vacuum full vs vacuum",
    "Wie spät ist es?",
    "¿Dónde está la estación de tren?",
    "Où se trouve la bibliothèque la plus proche ?",
    "东京的天气怎么样",
    "機械学習とは何ですか",
    "🚀 launch day! 🎉🎉",
    "ISBN 978-3-16-148410-0, pp. 221-245, doi:10.1000/182",
    "The meeting has been moved to Thursday at 3 pm in room B12.",
    "A dog chased the ball across the wet grass while the children laughed.",
    "The committee approved the budget after a two-hour debate over infrastructure spending.",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)",
    "SELECT id, title FROM documents WHERE created_at > now() - interval '7 days' ORDER BY id;",
    "fn main() { let v: Vec<u32> = (1..=10).map(|x| x * x).collect(); println!(\"{:?}\", v); }",
    "Total: $1,234.56 (incl. 19% VAT) - invoice #A-2024-0042, due 30/06/2024.",
    "Mitochondrial dysfunction contributes to neurodegeneration through impaired oxidative phosphorylation "
    "and increased production of reactive oxygen species. In this study we measured complex I activity in "
    "post-mortem brain tissue from 42 patients and 37 age-matched controls. Complex I activity was reduced by "
    "31% (95% CI 22-40%, p < 0.001) in the substantia nigra of patients, whereas no difference was found in "
    "the cerebellum. These findings support a region-specific bioenergetic deficit and suggest that "
    "therapeutic strategies targeting mitochondrial function should be evaluated in early disease.",
    "The city council voted on Tuesday to expand the bicycle lane network by forty kilometres over the next "
    "three years. Supporters argued that safer routes would reduce traffic congestion and air pollution, while "
    "several shop owners worried that removing parking spaces would hurt business. The plan includes protected "
    "lanes on the two main avenues, new signals at twelve intersections and a public bike-sharing scheme with "
    "eight hundred bicycles. Construction is expected to begin in the spring, and the council will publish "
    "monthly progress reports on its website.",
    "To make the dough, combine 500 g of flour, 10 g of salt and 7 g of dried yeast in a large bowl. Add 320 ml "
    "of lukewarm water and 2 tablespoons of olive oil, then knead for ten minutes until smooth and elastic. "
    "Cover and leave to rise in a warm place for one hour, or until doubled in size. Knock back the dough, "
    "shape it into a loaf and place it in an oiled tin. Bake at 220 C for 30 to 35 minutes; the loaf is done "
    "when it sounds hollow when tapped underneath.",
    "Section 4.2 Limitation of liability. Except in cases of gross negligence or wilful misconduct, neither "
    "party shall be liable to the other for any indirect, incidental, special or consequential damages, "
    "including loss of profits, revenue or data, arising out of or in connection with this agreement, whether "
    "in contract, tort or otherwise, even if advised of the possibility of such damages. Each party's total "
    "aggregate liability shall not exceed the fees paid in the twelve months preceding the claim.",
    "User: my laptop won't turn on after the update. Agent: I'm sorry to hear that. Can you hold the power "
    "button for fifteen seconds and then try again? User: ok, the fan spins but the screen stays black. "
    "Agent: thanks. Please connect an external monitor if you have one, and tell me whether anything appears.",
    "Photosynthesis converts light energy into chemical energy. In the light-dependent reactions, water is "
    "split and ATP and NADPH are produced; in the Calvin cycle, carbon dioxide is fixed into sugars. The rate "
    "depends on light intensity, temperature and CO2 concentration. Le taux de photosynthèse dépend aussi de "
    "la disponibilité en eau. Die Photosynthese ist die Grundlage fast aller Nahrungsketten.",
    "Release notes v2.4.0: added streaming uploads (#1182); fixed a race condition in the connection pool "
    "that could leak file descriptors under load (#1201); the default timeout is now 30 s instead of 60 s; "
    "deprecated the --legacy-auth flag, which will be removed in 3.0; improved error messages for invalid "
    "configuration files; updated dependencies (openssl 3.0.13, zlib 1.3.1).",
    "Chapter 1. It was a cold grey morning when the ship finally came into harbour. The passengers crowded "
    "the rail, wrapped in coats and scarves, searching the quay for familiar faces. Among them stood a young "
    "woman with a small leather suitcase, who had crossed the ocean alone to take up a post as a "
    "schoolteacher in a town she had never seen. She did not know yet that the letter confirming her "
    "appointment had been lost, nor that the school had closed its doors the previous winter.",
    "Randomized controlled trial of a low-sodium diet in adults with stage 1 hypertension: 412 participants "
    "were assigned to a diet providing less than 1500 mg of sodium per day or to usual diet for 12 weeks. "
    "Systolic blood pressure fell by 7.2 mmHg in the intervention group versus 1.9 mmHg in controls. Adverse "
    "events were rare and similar between groups. Adherence, measured by 24-hour urinary sodium excretion, "
    "was moderate and declined over time.",
]


def calibration_texts(path=None):
    if path:
        with open(path, encoding="utf-8") as f:
            return [line.strip() for line in f if line.strip()]
    texts = list(CALIBRATION_TEXTS)
    passages = [t for t in texts if len(t) > 400]
    texts += [passages[i] + " " + passages[i + 1] for i in range(0, len(passages) - 1, 2)]
    return texts


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
# Step 3: activation outliers (SmoothQuant, fp32 side branch for the largest GELU channels)
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


def split_ffn_outliers(model, amax, k):
    """For each FFN output MatMul (input = BiasGelu(x @ W1, b1)), move the k intermediate channels with
    the largest activations (amax, from calibration) out of the int8 path: W1[:, O] and b1[O] are
    zeroed (GELU(0) = 0, so those channels vanish from the tensor that is quantized at run time) and
    an fp32 side branch BiasGelu(x @ W1[:, O], b1[O]) @ W2[O, :] is added to the FFN output
    (LLM.int8()-style decomposition; the side MatMuls are tiny, k columns). Returns the names of the
    side MatMuls, which must not be quantized."""
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers = lambda name: [n for n in g.node if name in n.input]

    def get(name):
        return numpy_helper.to_array(inits[name]).astype(np.float32)

    def put(name, arr):
        inits[name].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), name))

    side_nodes = []
    for node in list(g.node):
        if node.op_type != "MatMul" or node.input[1] not in inits or node.input[0] not in amax:
            continue
        gelu = producer.get(node.input[0])
        if gelu is None or gelu.op_type != "BiasGelu" or gelu.input[1] not in inits:
            continue
        ffn1 = producer.get(gelu.input[0])
        if ffn1 is None or ffn1.op_type != "MatMul" or ffn1.input[1] not in inits:
            continue
        if len(consumers(gelu.output[0])) != 1 or len(consumers(ffn1.output[0])) != 1:
            continue
        out = np.argsort(-amax[node.input[0]], kind="stable")[:k]
        w1, b1, w2 = get(ffn1.input[1]), get(gelu.input[1]), get(node.input[1])
        p = node.name + "/outlier"
        g.initializer.extend([numpy_helper.from_array(w1[:, out].copy(), p + "_w1"),
                              numpy_helper.from_array(b1[out].copy(), p + "_b1"),
                              numpy_helper.from_array(w2[out, :].copy(), p + "_w2")])
        w1[:, out] = 0.0
        b1[out] = 0.0
        w2[out, :] = 0.0
        put(ffn1.input[1], w1)
        put(gelu.input[1], b1)
        put(node.input[1], w2)
        y = node.output[0]
        node.output[0] = y + "/int8_part"
        side = [helper.make_node("MatMul", [ffn1.input[0], p + "_w1"], [p + "/h"], name=p + "/MatMul_in"),
                helper.make_node("BiasGelu", [p + "/h", p + "_b1"], [p + "/gelu"], name=p + "/BiasGelu",
                                 domain="com.microsoft"),
                helper.make_node("MatMul", [p + "/gelu", p + "_w2"], [p + "/y"], name=p + "/MatMul_out"),
                helper.make_node("Add", [node.output[0], p + "/y"], [y], name=p + "/Add")]
        at = list(g.node).index(node) + 1
        for i, n in enumerate(side):
            g.node.insert(at + i, n)
        side_nodes += [side[0].name, side[2].name]
    return side_nodes


# ---------------------------------------------------------------------------------------------
# Step 4: dynamic int8 quantization
# ---------------------------------------------------------------------------------------------

def quantizable_nodes(model):
    inits = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type in ("MatMul", "Attention") and n.input[1] in inits]


def quantize(src_path, out_path, exclude):
    from onnxruntime.quantization import QuantType, quantize_dynamic
    import logging
    logging.getLogger().setLevel(logging.ERROR)  # "consider pre-processing" warnings
    quantize_dynamic(src_path, out_path,
                     weight_type=QuantType.QInt8, per_channel=True, reduce_range=True,
                     op_types_to_quantize=["MatMul", "Attention"],
                     nodes_to_exclude=list(exclude),
                     # the contrib ops (SkipLayerNormalization...) defeat ONNX shape inference: their
                     # outputs are float32
                     extra_options={"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT})


def prepare(fused, a, texts, tok_dir, max_seq_length):
    """Steps 3: smoothing and outlier splitting on a copy of the fused model.
    Returns (model, side-branch node names, description)."""
    model = onnx.ModelProto.FromString(fused.SerializeToString())
    if a.plain or (a.smooth_alpha <= 0 and a.outliers <= 0):
        return model, [], []
    names = list(dict.fromkeys(n.input[0] for n in model.graph.node
                               if n.name in set(quantizable_nodes(model))))
    amax = activation_absmax(model, tok_dir, max_seq_length, texts, names)
    done = []
    if a.smooth_alpha > 0:
        n = smooth(model, amax, a.smooth_alpha, sites=("qkv", "ffn1"))
        done.append(f"SmoothQuant alpha {a.smooth_alpha:g} on {n} QKV/FFN1 inputs")
    side = []
    if a.outliers > 0:
        side = split_ffn_outliers(model, amax, a.outliers)
        done.append(f"top {a.outliers} GELU channels of each FFN in fp32")
    return model, side, done


def describe(no_quantize, stats, done):
    fused = "ORT fusions (" + ", ".join(f"{k} x{v}" for k, v in stats.items()) + ")"
    if no_quantize:
        return "none (fp32), " + fused
    return "; ".join(["dynamic int8: s8 weights per channel (7-bit), u8 activations per tensor at run time",
                      fused] + done)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("fp32_dir")
    ap.add_argument("out_dir")
    ap.add_argument("--name", help="model name for docchat.json (default: OUT_DIR's basename)")
    ap.add_argument("--no-quantize", action="store_true", help="stop after the fusions (fused fp32 model)")
    ap.add_argument("--plain", action="store_true", help="no smoothing, no outlier split (plain dynamic int8)")
    ap.add_argument("--smooth-alpha", type=float, default=0.5, help="SmoothQuant migration strength (0: off)")
    ap.add_argument("--outliers", type=int, default=4, help="GELU channels per FFN kept in fp32 (0: off)")
    ap.add_argument("--calib", metavar="TEXTS_FILE", help="calibration texts, one per line (default: built-in)")
    ap.add_argument("--num-heads", type=int)
    ap.add_argument("--hidden-size", type=int)
    a = ap.parse_args()

    with open(os.path.join(a.fp32_dir, "docchat.json"), encoding="utf-8") as f:
        meta = json.load(f)
    if meta.get("architecture", "bert") != "bert":
        sys.exit(f"quantize: architecture {meta.get('architecture')!r} is not supported (bert only)")
    max_seq_length = int(meta.get("max_seq_length", 256))
    model = onnx.load(os.path.join(a.fp32_dir, "model.onnx"))
    heads, hidden = model_sizes(a.fp32_dir, model)
    heads, hidden = a.num_heads or heads, a.hidden_size or hidden
    rewritten = rewrite_mask(model)
    optimizer, stats = fuse(model, heads, hidden)
    print(f"quantize: {heads} heads, hidden {hidden}; mask rewritten: {rewritten}; fused: {stats}", file=sys.stderr)
    if not stats.get("Attention"):
        print("quantize: warning: no Attention fusion", file=sys.stderr)

    tmp = tempfile.mkdtemp(prefix="quant-")
    try:
        fused_path = os.path.join(tmp, "fused.onnx")
        optimizer.save_model_to_file(fused_path)  # also adds the com.microsoft opset import
        fused = onnx.load(fused_path)
        done, side = [], []
        if not a.no_quantize:
            prepared, side, done = prepare(fused, a, calibration_texts(a.calib), a.fp32_dir, max_seq_length)
        os.makedirs(a.out_dir, exist_ok=True)
        out_model = os.path.join(a.out_dir, "model.onnx")
        if a.no_quantize:
            shutil.copyfile(fused_path, out_model)
        else:
            prepared_path = os.path.join(tmp, "prepared.onnx")
            onnx.save(prepared, prepared_path)
            quantize(prepared_path, out_model, side)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.copyfile(os.path.join(a.fp32_dir, "tokenizer.json"), os.path.join(a.out_dir, "tokenizer.json"))
    meta = dict(meta)
    meta["name"] = a.name or os.path.basename(os.path.normpath(a.out_dir))
    meta["quantization"] = describe(a.no_quantize, stats, done)
    with open(os.path.join(a.out_dir, "docchat.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"quantize: wrote {a.out_dir} ({os.path.getsize(out_model) / 1e6:.1f} MB): {meta['quantization']}")


if __name__ == "__main__":
    main()

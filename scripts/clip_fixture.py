"""CLIP test fixtures, made without CLIP weights (no registry ships them).

    python3 clip_fixture.py OUT CORPUS_IMAGES CLIP_PACKAGE

writes
  OUT/model/       visual.onnx + textual.onnx: CLIP-shaped towers (ViT-B/32 input and output
                   shapes, 512-d outputs) with fixed pseudo-random weights, and CLIP's real
                   bpe_simple_vocab_16e6.txt.gz
  OUT/images/      extra test images: EXIF-rotated JPEG, palette PNG and GIF, grey+alpha PNG,
                   an image smaller than 224 px
  OUT/reference/   what reference implementations make of them:
                   pixels/NAME.f32  CLIP's preprocessing written with Pillow the way torchvision
                                    does it (Resize(224, BICUBIC), CenterCrop(224), RGB, ToTensor,
                                    Normalize), after ImageOps.exif_transpose; float32, 3x224x224
                   tokens.json      OpenAI's own simple_tokenizer.py (from CLIP_PACKAGE) ids
                   embeddings.json  ONNX Runtime's unit vectors for those pixels and ids
"""
import gzip
import importlib.util
import json
import os
import shutil
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageOps

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
VOCAB, CONTEXT, DIM, WIDTH = 49408, 77, 512, 64

CAPTIONS_EXTRA = [
    "A photo of a cat",
    "  lots   of\tspaces\nand lines  ",
    "It's what they'd've done, isn't it?",
    "\u201cCurly\u201d quotes and \u2018single\u2019 ones",
    "\ufb01ne \ufb02ower \ufb03ce",
    "\uff34\uff4f\uff4b\uff59\uff4f\u3000\uff34\uff4f\uff57\uff45\uff52",
    "fish &amp;amp; chips &eacute;t&#233; &#x41;",
    "cafe\u0301 na\u00efve \u00c0\u00c9\u00ce\u00d5\u00dc",
    "\u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03a3 and \u0130stanbul",
    "\u6771\u4eac\u30bf\u30ef\u30fc \u5bcc\u58eb\u5c71 \ud55c\uad6d\uc5b4",
    "rocket \U0001f680 launch \U0001f525\U0001f525 2026",
    "1,000,000 dollars; e-mail: someone@example.com",
    "C++ & Rust!!! ...?",
    "before <|endoftext|> after",
    "\u0132sselmeer \u01c4 ligatures",
    " ".join(["a very long caption that goes on"] * 20),
    "",
]


def clip_preprocess(path):
    img = ImageOps.exif_transpose(Image.open(path))
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = 224, int(224 * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = int(round((new_w - 224) / 2.0)), int(round((new_h - 224) / 2.0))
    img = img.crop((left, top, left + 224, top + 224)).convert("RGB")
    x = np.asarray(img, dtype=np.float32) / np.float32(255.0)
    return ((x - MEAN) / STD).transpose(2, 0, 1).astype(np.float32)


def make_images(corpus, out):
    os.makedirs(out, exist_ok=True)
    rocket = Image.open(os.path.join(corpus, "skimage__rocket.jpg"))
    # Stored sideways, with EXIF orientation 6 ("rotate 90 clockwise to view").
    exif = Image.Exif()
    exif[0x0112] = 6
    rocket.transpose(Image.Transpose.ROTATE_90).save(os.path.join(out, "exif_rotated.jpg"), quality=90, exif=exif)
    chelsea = Image.open(os.path.join(corpus, "skimage__chelsea.png")).convert("RGB")
    chelsea.quantize(64).save(os.path.join(out, "palette.png"))
    chelsea.quantize(32).save(os.path.join(out, "palette.gif"))
    camera = Image.open(os.path.join(corpus, "skimage__camera.png")).convert("L")
    alpha = Image.linear_gradient("L").resize(camera.size)
    Image.merge("LA", (camera, alpha)).save(os.path.join(out, "gray_alpha.png"))
    Image.open(os.path.join(corpus, "skimage__coffee.png")).convert("RGB").crop((200, 100, 300, 160)).save(os.path.join(out, "small.png"))


def vision_model(rng):
    patch = rng.normal(0, 1 / np.sqrt(3 * 32 * 32), (WIDTH, 3, 32, 32)).astype(np.float32)
    bias = rng.normal(0, 0.1, (WIDTH,)).astype(np.float32)
    proj = rng.normal(0, 1 / np.sqrt(WIDTH * 49), (WIDTH * 49, DIM)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["pixel_values", "patch", "bias"], ["patches"], kernel_shape=[32, 32], strides=[32, 32]),
        helper.make_node("Tanh", ["patches"], ["last_hidden_state"]),
        helper.make_node("Flatten", ["last_hidden_state"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "proj"], ["image_embeds"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_clip_visual",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, 224, 224])],
        # Hugging Face exports list more than the embedding; docchat picks image_embeds by name.
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", WIDTH, 7, 7]),
         helper.make_tensor_value_info("image_embeds", TensorProto.FLOAT, ["batch", DIM])],
        [numpy_helper.from_array(patch, "patch"), numpy_helper.from_array(bias, "bias"), numpy_helper.from_array(proj, "proj")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def text_model(rng):
    embed = rng.normal(0, 1, (VOCAB, WIDTH)).astype(np.float32)
    pos = rng.normal(0, 0.1, (CONTEXT, WIDTH)).astype(np.float32)
    proj = rng.normal(0, 1 / np.sqrt(WIDTH), (WIDTH, DIM)).astype(np.float32)
    # Like CLIP: causal (a running sum over positions) and read at the end token, the highest id.
    nodes = [
        helper.make_node("Gather", ["embed", "input_ids"], ["tokens"]),
        helper.make_node("Add", ["tokens", "pos"], ["placed"]),
        helper.make_node("Cast", ["attention_mask"], ["mask_f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask_f", "axis2"], ["mask3"]),
        helper.make_node("Mul", ["placed", "mask3"], ["masked"]),
        helper.make_node("CumSum", ["masked", "axis1"], ["causal"]),
        helper.make_node("ArgMax", ["input_ids"], ["eot"], axis=1, keepdims=1),
        helper.make_node("GatherND", ["causal", "eot"], ["pooled"], batch_dims=1),
        helper.make_node("Tanh", ["pooled"], ["act"]),
        helper.make_node("MatMul", ["act", "proj"], ["text_embeds"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_clip_textual",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", CONTEXT]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", CONTEXT])],
        [helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["batch", DIM])],
        [numpy_helper.from_array(embed, "embed"), numpy_helper.from_array(pos, "pos"), numpy_helper.from_array(proj, "proj"),
         numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2"), numpy_helper.from_array(np.array(1, dtype=np.int64), "axis1")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def reference_tokenizer(clip_package):
    spec = importlib.util.spec_from_file_location("simple_tokenizer", os.path.join(clip_package, "simple_tokenizer.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SimpleTokenizer(os.path.join(clip_package, "bpe_simple_vocab_16e6.txt.gz"))


def model_input(tok, text):
    # clip.tokenize(text, truncate=True)
    sot, eot = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]
    ids = [sot] + tok.encode(text) + [eot]
    if len(ids) > CONTEXT:
        ids = ids[:CONTEXT]
        ids[-1] = eot
    return ids + [0] * (CONTEXT - len(ids))


def unit(rows):
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def main(out, corpus, clip_package):
    model_dir, images_dir, ref_dir = (os.path.join(out, d) for d in ("model", "images", "reference"))
    for d in (model_dir, os.path.join(ref_dir, "pixels")):
        os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(20261124)
    onnx.save(vision_model(rng), os.path.join(model_dir, "visual.onnx"))
    onnx.save(text_model(rng), os.path.join(model_dir, "textual.onnx"))
    shutil.copy(os.path.join(clip_package, "bpe_simple_vocab_16e6.txt.gz"), model_dir)
    make_images(corpus, images_dir)

    paths = sorted(os.path.join(corpus, f) for f in os.listdir(corpus) if f.endswith((".png", ".jpg")))
    paths += sorted(os.path.join(images_dir, f) for f in os.listdir(images_dir))
    pixels = {}
    for p in paths:
        name = os.path.basename(p)
        pixels[name] = clip_preprocess(p)
        pixels[name].tofile(os.path.join(ref_dir, "pixels", name + ".f32"))

    tok = reference_tokenizer(clip_package)
    with open(os.path.join(corpus, "captions.tsv"), encoding="utf-8") as f:
        captions = [line.rstrip("\n").split("\t", 1)[1] for line in f.readlines()[1:] if "\t" in line]
    texts = captions + CAPTIONS_EXTRA
    tokens = [{"text": t, "ids": model_input(tok, t)} for t in texts]
    with open(os.path.join(ref_dir, "tokens.json"), "w", encoding="utf-8") as f:
        json.dump(tokens, f, ensure_ascii=False)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    visual = ort.InferenceSession(os.path.join(model_dir, "visual.onnx"), opts)
    textual = ort.InferenceSession(os.path.join(model_dir, "textual.onnx"), opts)
    names = sorted(pixels)
    image_vecs = unit(visual.run(["image_embeds"], {"pixel_values": np.stack([pixels[n] for n in names])})[0])
    ids = np.array([t["ids"] for t in tokens], dtype=np.int64)
    mask = np.zeros_like(ids)
    for r, row in enumerate(ids):
        mask[r, : list(row).index(tok.encoder["<|endoftext|>"]) + 1] = 1
    text_vecs = unit(textual.run(["text_embeds"], {"input_ids": ids, "attention_mask": mask})[0])
    with open(os.path.join(ref_dir, "embeddings.json"), "w", encoding="utf-8") as f:
        json.dump({"images": {n: v.tolist() for n, v in zip(names, image_vecs)},
                   "texts": [{"text": t["text"], "vector": v.tolist()} for t, v in zip(tokens, text_vecs)]}, f, ensure_ascii=False)
    print(f"clip fixture: {len(names)} images, {len(texts)} texts -> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:4])

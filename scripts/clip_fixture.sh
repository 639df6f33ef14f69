#!/usr/bin/env bash
# The CLIP test fixtures (scripts/clip_fixture.py) under $DOCCHAT_CACHE/clip-fixture, made once per
# version of the script: a tiny CLIP-shaped ONNX pair and reference outputs of Pillow, OpenAI's
# tokenizer and ONNX Runtime. Needs scripts/models.sh's Python packages (numpy, onnx, onnxruntime).
source "$(dirname "$0")/env.sh"
out=$DOCCHAT_CACHE/clip-fixture
corpus=${DOCCHAT_SHARED:-$(cd "$REPO/../shared" && pwd)}/corpus/images
stamp=$out/.done-$(cat "$REPO/scripts/clip_fixture.py" "$0" | sha1sum | cut -c1-12)
[ -f "$stamp" ] && exit 0
# Pillow (the reference preprocessing), OpenAI's CLIP package for simple_tokenizer.py and the
# BPE vocabulary, and what simple_tokenizer.py imports.
pip_target clipref pillow==13.0.0 clip-anytorch==2.6.0 ftfy==6.3.1 wcwidth==0.9.4 regex==2026.11.19
rm -rf "$out"
mkdir -p "$out"
PYTHONPATH=$DOCCHAT_CACHE/py/clipref:$DOCCHAT_CACHE/py/export:$DOCCHAT_CACHE/py/onnxruntime \
  python3 "$REPO/scripts/clip_fixture.py" "$out" "$corpus" "$DOCCHAT_CACHE/py/clipref/clip"
touch "$stamp"

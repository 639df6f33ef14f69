#!/usr/bin/env bash
# Builds docchat (release) and installs it, with the model and ONNX Runtime, into the
# PostgreSQL install from setup.sh.
source "$(dirname "$0")/env.sh"
cd "$REPO"
log "building and installing docchat (release)"
cargo pgrx install --release --pg-config "$PG_CONFIG" >/dev/null
sharedir=$("$PG_CONFIG" --sharedir)
pkglibdir=$("$PG_CONFIG" --pkglibdir)
install -D -m 0644 "$MODEL_ONNX" "$sharedir/docchat/models/all-MiniLM-L6-v2/model.onnx"
install -D -m 0644 "$MODEL_TOKENIZER" "$sharedir/docchat/models/all-MiniLM-L6-v2/tokenizer.json"
install -D -m 0755 "$ORT_LIB" "$pkglibdir/docchat/$(basename "$ORT_LIB")"
log "installed into $("$PG_CONFIG" --pkglibdir)"

#!/usr/bin/env bash
# Builds docchat (release) and installs it, with the model and ONNX Runtime, into the
# PostgreSQL install from setup.sh.
source "$(dirname "$0")/env.sh"
cd "$REPO"
log "building and installing docchat (release)"
# A running server has docchat.so mapped: unlink it rather than let the copy overwrite it in place.
rm -f "$("$PG_CONFIG" --pkglibdir)/docchat.so"
cargo pgrx install --release --pg-config "$PG_CONFIG" "${PG_FEATURES[@]}" >/dev/null
sharedir=$("$PG_CONFIG" --sharedir)
# Earlier releases' frozen install scripts, so that they can still be installed (and upgraded
# from, with the sql/docchat--A--B.sql scripts pgrx copies); the current version's script is the
# one pgrx just wrote, which tests/tests/release.rs holds equal to its frozen copy once released.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -1)
for f in "$REPO"/sql/releases/docchat--*.sql; do
  if [ -e "$f" ] && [ "$(basename "$f")" != "docchat--$version.sql" ]; then
    install -C -m 0644 "$f" "$sharedir/extension/"
  fi
done
pkglibdir=$("$PG_CONFIG" --pkglibdir)
models=$sharedir/docchat/models
# The models from scripts/models.sh (run by setup.sh); the int8 MiniLM is the default model.
for m in all-MiniLM-L6-v2-int8 all-MiniLM-L6-v2-fp32 all-mpnet-base-v2; do
  for f in model.onnx tokenizer.json docchat.json; do
    install -C -D -m 0644 "$DOCCHAT_CACHE/models/$m/$f" "$models/$m/$f"
  done
done
install -D -m 0755 "$ORT_LIB" "$pkglibdir/docchat/$(basename "$ORT_LIB")"
log "installed into $("$PG_CONFIG" --pkglibdir)"

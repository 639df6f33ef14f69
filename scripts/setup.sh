#!/usr/bin/env bash
# One idempotent set-up step: system packages, PostgreSQL 16 + pgvector, ONNX Runtime, the model,
# cargo-pgrx. Every step checks whether it is already done, so a second run takes seconds.
source "$(dirname "$0")/env.sh"

apt_pkgs=(libclang-dev clang sudo pkg-config tesseract-ocr tesseract-ocr-eng tesseract-ocr-osd libtesseract-dev libleptonica-dev poppler-utils poppler-data)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  if [ "$(id -u)" != 0 ]; then echo "run as root (or install: ${missing[*]})" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

pip_target pgserver "$PG_VERSION_PIN"
pip_target onnxruntime "onnxruntime==$ORT_VERSION"
for f in "$PG_CONFIG" "$ORT_LIB"; do
  [ -e "$f" ] || { echo "setup: expected file missing after install: $f" >&2; exit 1; }
done

if [ "$(id -u)" = 0 ] && ! id "$PG_OS_USER" >/dev/null 2>&1; then
  log "creating system user $PG_OS_USER"
  useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$PG_OS_USER"
fi
if [ "$(id -u)" = 0 ] && ! runuser -u "$PG_OS_USER" -- test -x "$PG_CONFIG"; then
  echo "setup: user $PG_OS_USER cannot run $PG_CONFIG; set DOCCHAT_STATE to a folder it can read" >&2
  exit 1
fi

# make test checks formatting and lints.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  log "rustup component add rustfmt clippy"
  rustup component add rustfmt clippy
fi
if ! cargo-pgrx pgrx --version 2>/dev/null | grep -q 0.18.1; then
  log "cargo install cargo-pgrx 0.18.1 (takes ~6 min once)"
  cargo install -q cargo-pgrx --version 0.18.1 --locked --root "$DOCCHAT_CACHE/cargo-pgrx"
fi
# Both versions the wheel ships (nothing is downloaded); clippy always builds against 16.
if ! grep -qs "$PGSERVER/pginstall18/" "$PGRX_HOME/config.toml"; then
  log "cargo pgrx init --pg16 --pg18 (the wheel's installs)"
  cargo pgrx init --pg16 "$PGSERVER/pginstall/bin/pg_config" --pg18 "$PGSERVER/pginstall18/bin/pg_config" >/dev/null
fi
bash "$REPO/scripts/models.sh"
log "setup done"

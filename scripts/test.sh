#!/usr/bin/env bash
# `make test`: unit tests of the pipeline stages, then SQL-level integration tests against a
# fresh cluster (its own data folder and port) with the release build of docchat installed.
source "$(dirname "$0")/env.sh"
bash "$REPO/scripts/setup.sh"
bash "$REPO/scripts/install.sh"
cd "$REPO"
export DOCCHAT_TEST_PORT=${DOCCHAT_TEST_PORT:-5434}
datadir=$DOCCHAT_STATE/.pgtest
rm -rf "$datadir"
trap 'bash "$REPO/scripts/cluster.sh" "$datadir" 0 stop' EXIT
bash "$REPO/scripts/cluster.sh" "$datadir" "$DOCCHAT_TEST_PORT" start
export DOCCHAT_ORT_LIB=$ORT_LIB DOCCHAT_MODEL_ONNX=$MODEL_ONNX DOCCHAT_TOKENIZER=$MODEL_TOKENIZER
export DOCCHAT_SHARED=${DOCCHAT_SHARED:-$(cd "$REPO/../shared" && pwd)}
log "unit and integration tests"
cargo test --release --no-fail-fast -p docchat-core -p docchat-tests 2>&1

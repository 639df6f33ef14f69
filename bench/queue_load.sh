#!/usr/bin/env bash
# Concurrent async ingest + search (after `make install`):
#   bash bench/queue_load.sh [SESSIONS [SECONDS]]     (default 8 sessions, 300 s)
# Starts its own cluster (port 5437, data in $DOCCHAT_STATE/.pgload), runs tests/examples/queue_load.rs
# and prints throughput, latency percentiles, errors and the lost/duplicated-document check.
source "$(dirname "$0")/../scripts/env.sh"
cd "$REPO"
port=${DOCCHAT_LOAD_PORT:-5437}
datadir=$DOCCHAT_STATE/.pgload
cargo build --release -q -p docchat-tests --example queue_load
bash scripts/cluster.sh "$datadir" "$port" start
trap 'bash scripts/cluster.sh "$datadir" 0 stop' EXIT
export DOCCHAT_TEST_PORT=$port DOCCHAT_SHARED=${DOCCHAT_SHARED:-$REPO/../shared}
./target/release/examples/queue_load "${1:-8}" "${2:-300}"

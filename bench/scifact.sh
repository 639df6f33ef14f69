#!/usr/bin/env bash
# Retrieval quality on BEIR SciFact through docchat's SQL functions (after `make install`):
#   bash bench/scifact.sh [MODEL...]      (default: all-MiniLM-L6-v2 all-MiniLM-L6-v2-fp32 all-mpnet-base-v2)
# Starts its own cluster (port 5436, data kept in $DOCCHAT_STATE/.pgscifact, so a rerun with the same
# build skips the ingest), ingests the 5183 abstracts with each model (MiniLM ~3 min, mpnet ~15 min
# on 2 cores), runs the 300 test queries in the semantic, keyword and hybrid modes and prints
# nDCG@10 and recall@100 beside the published figures.
source "$(dirname "$0")/../scripts/env.sh"
cd "$REPO"
shared=${DOCCHAT_SHARED:-$REPO/../shared}
data=$shared/corpus/retrieval/scifact
port=${DOCCHAT_SCIFACT_PORT:-5436}
datadir=$DOCCHAT_STATE/.pgscifact
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(all-MiniLM-L6-v2 all-MiniLM-L6-v2-fp32 all-mpnet-base-v2)
cargo build --release -q -p docchat-tests --example scifact
bash scripts/cluster.sh "$datadir" "$port" start
trap 'bash scripts/cluster.sh "$datadir" 0 stop' EXIT
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres DOCCHAT_TEST_PORT=$port DOCCHAT_BENCH_DB=scifact
# A new build of docchat gets a new database: the ingest is redone with the extension it measures.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
build=$(sha1sum "$("$PG_CONFIG" --pkglibdir)/docchat.so" "$("$PG_CONFIG" --sharedir)/extension/docchat--$version.sql" | sha1sum | cut -c1-12)
if [ "$(psql -qAtX -d postgres -c "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = 'scifact'")" != "$build" ]; then
  psql -qAtX -d postgres -c "DROP DATABASE IF EXISTS scifact WITH (FORCE)" -c "CREATE DATABASE scifact" \
    -c "COMMENT ON DATABASE scifact IS '$build'"
  psql -qAtX -d scifact -c "CREATE EXTENSION docchat CASCADE" 2>/dev/null
fi
for m in "${models[@]}"; do ./target/release/examples/scifact ingest "$data" "$m"; done
echo "| model | mode | nDCG@10 | recall@100 | p50 latency | p95 latency | |"
echo "|---|---|---|---|---|---|---|"
for m in "${models[@]}"; do
  for mode in semantic keyword hybrid; do ./target/release/examples/scifact eval "$data" "$m" "$mode"; done
done
echo "published (BEIR): all-MiniLM-L6-v2 0.645, all-mpnet-base-v2 0.656, BM25 ≈ 0.66 nDCG@10"

#!/usr/bin/env bash
# Search at scale through docchat_search (after `make install`):
#   bash bench/scale.sh [N] [LAYOUT...]   (default: 1000000 chunks; layouts one many small)
#   bash bench/scale.sh N images          (pictures: exact scan against the HNSW index at
#                                          1,000 to N pictures of one owner)
# Starts its own cluster (port 5437, data in $DOCCHAT_STATE/.pgscale). For each layout it loads N
# chunks of real SciFact sentences with real vectors (tests/examples/scale.rs says how), builds
# the HNSW index, and runs SciFact's 300 test queries in every mode with k = 8: latency p50, p95,
# p99 (query embedding included), whether every search returned min(k, matches) rows, and the
# semantic side's recall@10 against an exact scan (every third query). Loads take minutes per
# 100,000 chunks on 2 cores (1M: 4 min, HNSW 11 min).
source "$(dirname "$0")/../scripts/env.sh"
cd "$REPO"
shared=${DOCCHAT_SHARED:-$REPO/../shared}
data=$shared/corpus/retrieval/scifact
n=${1:-1000000}
shift || true
layouts=("$@")
[ ${#layouts[@]} -gt 0 ] || layouts=(one many small)
port=${DOCCHAT_SCALE_PORT:-5437}
datadir=$DOCCHAT_STATE/.pgscale
cargo build --release -q -p docchat-tests --example scale
# Sized as a server holding this many chunks would be: the heap and the indexes in memory
# (about 5 GB per million chunks).
export DOCCHAT_CLUSTER_CONF=${DOCCHAT_CLUSTER_CONF:-"shared_buffers = '6GB'"}
bash scripts/cluster.sh "$datadir" "$port" start
trap 'bash scripts/cluster.sh "$datadir" 0 stop' EXIT
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres DOCCHAT_TEST_PORT=$port
# A new install of the extension (its script's checksum) gets a new database, keeping the
# sentences' vectors, which take minutes to embed.
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
build=$(md5sum < "$($PG_CONFIG --sharedir)/extension/docchat--$version.sql" | cut -c1-32)
if [ "$(psql -qAtX -d scale -c "SELECT key FROM bench_build" 2>/dev/null)" != "$build" ]; then
  sentences=$DOCCHAT_CACHE/scale-sentences.sql
  psql -qAtX -d scale -c "SELECT 1 FROM bench_sentences LIMIT 1" >/dev/null 2>&1 \
    && pg_dump -d scale -t bench_sentences --no-owner > "$sentences"
  psql -qAtX -d postgres -c "DROP DATABASE IF EXISTS scale WITH (FORCE)" -c "CREATE DATABASE scale"
  psql -qAtX -d scale -c "CREATE EXTENSION docchat CASCADE" 2>/dev/null
  [ -s "$sentences" ] && psql -qX -d scale -f "$sentences" >/dev/null && rm -f "$sentences"
  psql -qAtX -d scale -c "CREATE TABLE bench_build AS SELECT '$build'::text AS key"
fi
lscpu | sed -n 's/^Model name: *//p'
for layout in "${layouts[@]}"; do
  if [ "$layout" = images ]; then
    sizes=$(for s in 1000 3000 10000 30000 100000 300000 1000000; do [ "$s" -le "$n" ] && echo "$s"; done)
    ./target/release/examples/scale images "$data" $sizes
    continue
  fi
  ./target/release/examples/scale load "$data" "$n" "$layout"
  ./target/release/examples/scale query "$data" "$layout"
done

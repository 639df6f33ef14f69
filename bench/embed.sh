#!/usr/bin/env bash
# Embedding speed, concurrency and memory, each against a baseline measured in the same run:
#   bash bench/embed.sh            (after `make install`; takes ~10 minutes)
# Starts its own cluster (docchat preloaded, port 5435), then measures on
# ../shared/reference/bench_passages.txt and bench_queries.txt:
#   - sentence-transformers (bench/st_env.sh, torch CPU, 2 threads): the baseline;
#   - docchat through the model worker: 1000 passages as one docchat_embed(text[]) call and
#     1000 queries as one SELECT docchat_embed($1) each, over SQL;
#   - the same with docchat.model_worker = off (the model inside the session, 2 threads);
#   - the fp32 MiniLM and mpnet models against sentence-transformers on the first 200 of each;
#   - 1, 4, 16 concurrent sessions embedding queries, with and without the worker;
#   - cluster memory (PSS) with 32 sessions idle, then after each embedded once.
source "$(dirname "$0")/../scripts/env.sh"
cd "$REPO"
shared=${DOCCHAT_SHARED:-$REPO/../shared}
passages=$shared/reference/bench_passages.txt queries=$shared/reference/bench_queries.txt
port=${DOCCHAT_BENCH_PORT:-5435}
datadir=$DOCCHAT_STATE/.pgbench
cargo build --release -q -p docchat-tests --example bench_embed
bash scripts/cluster.sh "$datadir" "$port" start
inputs=$(mktemp -d)
trap 'bash scripts/cluster.sh "$datadir" 0 stop; rm -rf "$inputs"' EXIT
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres DOCCHAT_TEST_PORT=$port DOCCHAT_BENCH_DB=docchat_bench
psql -qAtX -d postgres -c "DROP DATABASE IF EXISTS docchat_bench WITH (FORCE)" -c "CREATE DATABASE docchat_bench"
psql -qAtX -d docchat_bench -c "CREATE EXTENSION docchat CASCADE" 2>/dev/null
drive() { ./target/release/examples/bench_embed "$@"; }
in_session="SET docchat.model_worker = off; SET docchat.threads = 2"

echo "## $(date -u +%F), $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p')"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
val() { sed -n "s|^$1 \([0-9.]*\)|\1|p" <<<"$2"; }
# compare MODEL CHECKPOINT PASSAGES QUERIES REPEATS [in-session too]: sentence-transformers on the
# checkpoint, then docchat's MODEL through the worker (and in the session), and the ratios.
compare() {
  local model=$1 src=$DOCCHAT_CACHE/models-src/$2 p=$3 q=$4 st st_p st_q w s line
  echo "### $model: sentence-transformers ($2, baseline)"
  st=$(bash bench/st_env.sh run "$src" --passages "$p" --queries "$q" --repeats "$5" 2>/dev/null); echo "$st"
  st_p=$(sed -n 's|.*batch32 passages: \([0-9.]*\).*|\1|p' <<<"$st")
  st_q=$(sed -n 's|.*batch1 queries: \([0-9.]*\).*|\1|p' <<<"$st")
  echo "### $model: docchat, model worker"
  w=$(DOCCHAT_BENCH_SET="SET docchat.model = '$model'" drive throughput "$p" "$q"); echo "$w"
  line="$model vs sentence-transformers: worker passages $(ratio "$(val passages/s "$w")" "$st_p"), queries $(ratio "$(val queries/s "$w")" "$st_q")"
  if [ -n "${6:-}" ]; then
    echo "### $model: docchat, model in the session"
    s=$(DOCCHAT_BENCH_SET="$in_session; SET docchat.model = '$model'" drive throughput "$p" "$q"); echo "$s"
    line+="; in-session passages $(ratio "$(val passages/s "$s")" "$st_p"), queries $(ratio "$(val queries/s "$s")" "$st_q")"
  fi
  echo "$line"
}
compare all-MiniLM-L6-v2 all-MiniLM-L6-v2 "$passages" "$queries" 3 in-session
# The fp32 models on the first 200 inputs (mpnet runs ~7 passages/s).
head -200 "$passages" >"$inputs/p200.txt"; head -200 "$queries" >"$inputs/q200.txt"
compare all-MiniLM-L6-v2-fp32 all-MiniLM-L6-v2 "$inputs/p200.txt" "$inputs/q200.txt" 1
compare all-mpnet-base-v2 all-mpnet-base-v2 "$inputs/p200.txt" "$inputs/q200.txt" 1
echo "### concurrency (15 s each)"
for n in 1 4 16; do echo -n "worker     "; drive concurrency "$queries" "$n" 15; done
for n in 1 16; do echo -n "in-session "; DOCCHAT_BENCH_SET=$in_session drive concurrency "$queries" "$n" 15; done
echo "### memory"
echo -n "worker     "; drive memory 32
echo -n "in-session "; DOCCHAT_BENCH_SET=$in_session drive memory 32
psql -qAtX -d docchat_bench -c "SELECT jsonb_pretty(docchat_health()->'model_worker')"

#!/usr/bin/env bash
# Ingest speed, measured on the running `make run` cluster (start it first):
#   bash bench/ingest.sh
# Prints pages/s for the 352-page pdfjs__freeculture.pdf and for an OCR page (tess__phototest.tif),
# each against a baseline measured in the same run: the same file parsed without embedding or
# storing (core's parse_files example), so the ratio shows what embedding and storage cost.
source "$(dirname "$0")/../scripts/env.sh"
cd "$REPO"
shared=${DOCCHAT_SHARED:-$REPO/../shared}
export PGHOST=127.0.0.1 PGPORT=$DOCCHAT_PORT PGUSER=postgres PGDATABASE=docchat
cargo build --release -q -p docchat-core --example parse_files
psql -qAtX -c "DROP DATABASE IF EXISTS docchat_bench WITH (FORCE)" -d postgres
psql -qAtX -c "CREATE DATABASE docchat_bench" -d postgres
psql -qAtX -d docchat_bench -c "CREATE EXTENSION docchat CASCADE" 2>/dev/null
now() { date +%s.%N; }
bench() { # FILE PAGES
  local file=$1 pages=$2 t0 t1 t2
  t0=$(now); ./target/release/examples/parse_files "$file" >/dev/null; t1=$(now)
  psql -qAtX -d docchat_bench -v ON_ERROR_STOP=1 -c "SELECT docchat_embed('warm up')" >/dev/null
  t1b=$(now)
  psql -qAtX -d docchat_bench -v ON_ERROR_STOP=1 \
    -c "SELECT docchat_ingest(pg_read_binary_file('$file'), '$(basename "$file")')" >/dev/null
  t2=$(now)
  psql -qAtX -d docchat_bench -c "SELECT n_chunks FROM docchat.documents ORDER BY created_at DESC LIMIT 1" >/tmp/docchat-bench-chunks
  python3 - "$file" "$pages" "$t0" "$t1" "$t1b" "$t2" "$(cat /tmp/docchat-bench-chunks)" <<'PY'
import sys, os
f, pages, t0, t1, t1b, t2, chunks = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:7]), sys.argv[7]
parse, ingest = t1 - t0, t2 - t1b
print(f"{os.path.basename(f)}: {pages} pages, {chunks} chunks | parse only {parse:.2f} s = {pages/parse:.1f} pages/s"
      f" | full ingest {ingest:.2f} s = {pages/ingest:.1f} pages/s ({int(chunks)/ingest:.1f} chunks/s) | ingest/parse time ratio {ingest/parse:.1f}x")
PY
}
bench "$shared/corpus/pdf/pdfjs__freeculture.pdf" 352
bench "$shared/corpus/ocr/tess__phototest.tif" 1

#!/usr/bin/env bash
# `make run`: set up, build, install, start a cluster with docchat, ingest a sample document
# and search it. Leaves the server running (`make stop`).
source "$(dirname "$0")/env.sh"
bash "$REPO/scripts/setup.sh"
bash "$REPO/scripts/install.sh"
datadir=$RUN_DATADIR
bash "$REPO/scripts/cluster.sh" "$datadir" "$DOCCHAT_PORT" start
export PGHOST=127.0.0.1 PGPORT=$DOCCHAT_PORT PGUSER=postgres
psql -qAtX -d postgres -c "SELECT 1 FROM pg_database WHERE datname = 'docchat'" | grep -q 1 ||
  psql -qX -d postgres -c "CREATE DATABASE docchat"
psql -qX -d docchat -v ON_ERROR_STOP=1 -c "CREATE EXTENSION IF NOT EXISTS docchat CASCADE"
psql -qX -d docchat -v ON_ERROR_STOP=1 -v sample="$(cat "$REPO/examples/sample.md")" >/dev/null <<'SQL'
SELECT docchat_ingest(convert_to(:'sample', 'UTF8'), 'sample.md', 'text/markdown') AS ingested
WHERE NOT EXISTS (SELECT 1 FROM docchat.documents WHERE filename = 'sample.md');
SQL
question="How do plants turn sunlight into food?"
echo
echo "Top hits for: $question"
psql -X -d docchat -v ON_ERROR_STOP=1 -c \
  "SELECT round(similarity::numeric, 3) AS similarity, filename, chunk_index, left(regexp_replace(content, '\s+', ' ', 'g'), 100) AS content
   FROM docchat_search('$question', 3)"
echo "docchat is running: psql postgresql://postgres@127.0.0.1:$DOCCHAT_PORT/docchat   (stop: make stop)"

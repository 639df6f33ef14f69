#!/usr/bin/env bash
# cluster.sh DATADIR PORT start|stop|restart [PRIMARY_PORT]: a local cluster with docchat
# preloaded, listening on 127.0.0.1 only, superuser postgres, trusted local connections (a dev
# cluster). With PRIMARY_PORT, a new DATADIR is made a streaming hot standby of that cluster.
# DOCCHAT_CLUSTER_CONF: more postgresql.conf lines (bench/scale.sh sizes shared_buffers).
source "$(dirname "$0")/env.sh"
datadir=$(realpath -m "$1") port=$2 action=$3 primary=${4:-}
if [ "$action" = stop ]; then
  [ -f "$datadir/postmaster.pid" ] && as_pg pg_ctl -D "$datadir" -m fast -w stop >/dev/null
  exit 0
fi
if [ -n "$primary" ] && [ ! -f "$datadir/PG_VERSION" ]; then
  log "pg_basebackup of 127.0.0.1:$primary into $datadir"
  mkdir -p "$datadir"
  [ "$(id -u)" = 0 ] && chown "$PG_OS_USER:" "$datadir"
  chmod 0700 "$datadir"
  as_pg pg_basebackup -h 127.0.0.1 -p "$primary" -U postgres -D "$datadir" -X stream -c fast
  as_pg touch "$datadir/standby.signal"
  rm -f "$datadir/server.log"
fi
if [ ! -f "$datadir/PG_VERSION" ]; then
  log "initdb $datadir"
  mkdir -p "$datadir"
  [ "$(id -u)" = 0 ] && chown "$PG_OS_USER:" "$datadir"
  chmod 0700 "$datadir"
  as_pg initdb -D "$datadir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
fi
as_pg tee "$datadir/postgresql.auto.conf" >/dev/null <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = ''
shared_preload_libraries = 'docchat'
max_worker_processes = 64
logging_collector = off
${DOCCHAT_CLUSTER_CONF:-}
CONF
if [ -f "$datadir/standby.signal" ]; then
  primary_port=${primary:-$(sed -n "s/^# primary port //p" "$datadir/primary.port" 2>/dev/null)}
  echo "primary_conninfo = 'host=127.0.0.1 port=$primary_port user=postgres'" | as_pg tee -a "$datadir/postgresql.auto.conf" >/dev/null
  echo "# primary port $primary_port" | as_pg tee "$datadir/primary.port" >/dev/null
fi
# RUST_BACKTRACE: a panic's backtrace goes to server.log (docchat keeps it out of users' errors,
# which make test checks with it set).
export RUST_BACKTRACE=1
if as_pg pg_ctl -D "$datadir" status >/dev/null 2>&1; then
  # Restart so a freshly installed library is the one loaded.
  as_pg pg_ctl -D "$datadir" -m fast -w -l "$datadir/server.log" restart >/dev/null
else
  as_pg pg_ctl -D "$datadir" -w -l "$datadir/server.log" start >/dev/null
fi

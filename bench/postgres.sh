#!/usr/bin/env bash
# A throwaway PostgreSQL server for the benchmarks' PostgreSQL state (Debian's packages),
# trust authentication on 127.0.0.1. Durability as shipped (fsync, synchronous_commit and
# full_page_writes on); sized for bulk writes as a production server would be
# (PG_OPTS, default: shared_buffers 1GB, max_wal_size 8GB, so a million 2 KB notifications
# do not force a checkpoint every few seconds).
#
#   DSN=$(bench/postgres.sh start /tmp/bench-pg)   # initdb + start; prints the connection string
#   bench/postgres.sh stop /tmp/bench-pg           # stop and delete
set -euo pipefail
CMD=${1:?start or stop}
DIR=${2:?a directory}
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$CMD" in
start)
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$DIR"
    as_pg "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
    as_pg "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c max_connections=200 ${PG_OPTS:--c shared_buffers=1GB -c max_wal_size=8GB}" \
        start >/dev/null
    echo "host=127.0.0.1 port=$PORT user=postgres dbname=postgres sslmode=disable"
    ;;
stop)
    as_pg "$BIN/pg_ctl" -D "$DIR/data" -m fast -w stop >/dev/null || true
    rm -rf "$DIR"
    ;;
esac

#!/usr/bin/env bash
# Push endpoint benchmark: cen-poller's mTLS push endpoint (durable SQLite group commit)
# against nginx with the same certificates and `ssl_verify_client on` returning a static 200
# (the ceiling of this machine). All traffic on 127.0.0.1; every process started here is
# stopped on exit.
#
#   bench/push.sh                      # 1, 10 and 50 connections, 20 s each
#   CONNS="50" DURATION=20s bench/push.sh
#   SIZE=small bench/push.sh           # ~200-byte notifications instead of realistic ~1.8 KB ones
#   SKIP_BUILD=1 BIN=/path/to/cen-poller bench/push.sh   # another daemon build, same load generator
#   PG_DSN=$(bench/postgres.sh start /tmp/pg) bench/push.sh          # PostgreSQL state (SPEC 13)
#   PG_DSN=... INSTANCES=3 CONNS=51 bench/push.sh   # three instances on it, the connections
#                                                   # split evenly, one load generator each
#
# The daemon runs with NO sinks (SINK=file adds a file sink): the figure is the endpoint +
# parse + durable commit. Its poller polls a `cen-poller simulate` holding a handful of
# notifications, once an hour.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CONNS=${CONNS:-"1 10 50"}
DURATION=${DURATION:-20s}
BATCH=${BATCH:-10}
SIZE=${SIZE:-realistic}
SINK=${SINK:-none}
INSTANCES=${INSTANCES:-1}
if [ "$INSTANCES" != 1 ] && [ -z "${PG_DSN:-}" ]; then
    echo "INSTANCES > 1 needs PG_DSN: several instances share a PostgreSQL state" >&2
    exit 2
fi
WORK=$(mktemp -d /tmp/cen-push-bench.XXXXXX)
PIDS=()
DAEMONS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    [ -n "${KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

if [ -z "${SKIP_BUILD:-}" ]; then
    echo "== build (release)"
    (cd "$ROOT" && cargo build --release --bin cen-poller --example push_load)
fi
# BIN: another build of the daemon (a same-session A/B against an older commit).
BIN=${BIN:-"$ROOT/target/release/cen-poller"}
LOAD="$ROOT/target/release/examples/push_load"

echo "== certificates in $WORK"
cd "$WORK"
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench server CA" \
    -keyout server-ca-key.pem -out server-ca.pem
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=bench client CA" \
    -keyout client-ca-key.pem -out client-ca.pem
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=localhost" -keyout server-key.pem -out server.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' > server.ext
ossl x509 -req -in server.csr -CA server-ca.pem -CAkey server-ca-key.pem -CAcreateserial -days 2 -extfile server.ext -out server.pem
ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench-pusher" -keyout client-key.pem -out client.csr
printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' > client.ext
ossl x509 -req -in client.csr -CA client-ca.pem -CAkey client-ca-key.pem -CAcreateserial -days 2 -extfile client.ext -out client.pem
# The poller's OAuth signing key (the simulator does not check signatures here).
ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out signing-key.pem

SIM_PORT=$(free_port)
"$BIN" simulate --listen "127.0.0.1:$SIM_PORT" --count 5 --backlog 10m --rate 1 > sim.log 2>&1 &
PIDS+=($!)
wait_port "$SIM_PORT"

SINKS=""
if [ "$SINK" = file ]; then
    SINKS=$'[[sinks]]\nname = "archive"\ntype = "file"\npath = "notifications.jsonl"\n'
fi
if [ -n "${PG_DSN:-}" ]; then
    count_stored() { psql "$PG_DSN" -tAc "select count(*) from cen_poller.notifications" 2>/dev/null || echo 0; }
else
    count_stored() { sqlite3 state.db "select count(*) from notifications"; }
fi
PUSH_PORTS=()
for i in $(seq 1 "$INSTANCES"); do
    PORT=$(free_port)
    PUSH_PORTS+=("$PORT")
    if [ -n "${PG_DSN:-}" ]; then
        STATE=$'backend = "postgres"\n'"url = \"$PG_DSN\""$'\n'"instance = \"bench-$i\""
    else
        STATE='path = "state.db"'
    fi
    cat > "config-$i.toml" <<EOF
[api]
base_url = "http://127.0.0.1:$SIM_PORT/commercial-event-notifications"
consumer_key = "bench"
signing_key = "signing-key.pem"
timeout = "10s"

[poll]
interval = "1h"

[state]
$STATE

[admin]
listen = "127.0.0.1:0"

[log]
format = "text"
level = "info"

[push]
listen = "127.0.0.1:$PORT"
path = "/notifications"
cert = "server.pem"
key = "server-key.pem"
client_ca = "client-ca.pem"
allowed_client_names = ["bench-pusher"]

$SINKS
EOF
    "$BIN" --config "config-$i.toml" > "daemon-$i.log" 2>&1 &
    DAEMONS+=($!)
    PIDS+=($!)
    wait_port "$PORT"
done
PUSH_PORT=${PUSH_PORTS[0]}
sleep 1
BEFORE=$(count_stored)

results=()
run() { # label port conns
    "$LOAD" --url "https://localhost:$2/notifications" --ca server-ca.pem --cert client.pem --key client-key.pem \
        --connections "$3" --duration "$DURATION" --batch "$BATCH" --size "$SIZE" --label "$1" | tee "load-$1-$3.txt"
    results+=("$(grep '^RESULT' "load-$1-$3.txt")")
}

OK_TOTAL=0
for c in $CONNS; do
    if [ "$INSTANCES" = 1 ]; then
        echo "== cen-poller, $c connections, $DURATION"
        run cen-poller "$PUSH_PORT" "$c"
        OK_TOTAL=$((OK_TOTAL + $(grep '^RESULT' "load-cen-poller-$c.txt" | sed 's/.* notifications=\([0-9]*\).*/\1/')))
    else
        # One load generator per instance, at once, each with its share of the connections.
        echo "== cen-poller x $INSTANCES, $c connections in all, $DURATION"
        LOADERS=()
        for i in $(seq 1 "$INSTANCES"); do
            "$LOAD" --url "https://localhost:${PUSH_PORTS[$((i - 1))]}/notifications" --ca server-ca.pem \
                --cert client.pem --key client-key.pem --connections $((c / INSTANCES)) --duration "$DURATION" \
                --batch "$BATCH" --size "$SIZE" --label "cen-poller-$i" > "load-$i-$c.txt" &
            LOADERS+=($!)
        done
        for p in "${LOADERS[@]}"; do wait "$p"; done
        for i in $(seq 1 "$INSTANCES"); do
            results+=("$(grep '^RESULT' "load-$i-$c.txt")")
            OK_TOTAL=$((OK_TOTAL + $(grep '^RESULT' "load-$i-$c.txt" | sed 's/.* notifications=\([0-9]*\).*/\1/')))
        done
        echo "   in all: $(grep -h '^RESULT' load-*-"$c".txt | sed 's/.* nps=\([0-9]*\).*/\1/' | paste -sd+ | bc) notifications/s"
    fi
done
AFTER=$(count_stored)
STORED=$((AFTER - BEFORE))
echo "== durability: generator got 200 for $OK_TOTAL notifications; the store gained $STORED (before $BEFORE, after $AFTER)"
for d in "${DAEMONS[@]}"; do kill "$d"; wait "$d" 2>/dev/null || true; done
# Counted again after a clean stop.
AFTER_STOP=$(count_stored)
echo "   after the daemon stopped: $AFTER_STOP rows"

NGINX_PORT=$(free_port)
mkdir -p nginx/logs
cat > nginx/nginx.conf <<EOF
worker_processes 2;
error_log $WORK/nginx/logs/error.log warn;
pid $WORK/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
    client_body_temp_path $WORK/nginx/body;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $WORK/server.pem;
        ssl_certificate_key $WORK/server-key.pem;
        ssl_client_certificate $WORK/client-ca.pem;
        ssl_verify_client on;
        ssl_protocols TLSv1.2 TLSv1.3;
        client_max_body_size 10m;
        location /notifications {
            default_type application/json;
            return 200 '{"status":"ok"}';
        }
    }
}
EOF
nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" -g 'daemon off;' &
PIDS+=($!)
wait_port "$NGINX_PORT"
for c in $CONNS; do
    echo "== nginx, $c connections, $DURATION"
    run nginx "$NGINX_PORT" "$c"
done

echo
echo "== summary (batch $BATCH of $SIZE notifications, $DURATION per run, sinks: $SINK)"
printf '%-11s %5s %16s %9s %9s %9s %7s\n' server conns notifications/s p50_ms p99_ms max_ms errors
for r in "${results[@]}"; do
    eval "$(echo "$r" | sed 's/^RESULT //')"
    # shellcheck disable=SC2154
    printf '%-11s %5s %16s %9s %9s %9s %7s\n' "$label" "$connections" "$nps" "$p50" "$p99" "$max" "$errors"
done
echo "durably stored: $STORED new rows for $OK_TOTAL notifications answered 200"

#!/usr/bin/env bash
# End-to-end latency, push request sent -> the http sink's receiver has the record, at a
# fixed rate of one notification per request over kept-alive mTLS connections. The example
# (bench/latency/main.rs) starts the release daemon as a child process with a config in a
# temp dir, its own receiver and an in-process simulator, and stops everything by itself.
#
#   bench/latency.sh                          # 1000/s for 20 s over 4 connections
#   RATE=200 DURATION=20s CONNS=4 bench/latency.sh
#   NOBUILD=1 LABEL=after bench/latency.sh     # skip the build, tag the RESULT line
#   PG_DSN=$(bench/postgres.sh start /tmp/pg) INSTANCES=3 bench/latency.sh   # a cluster on PostgreSQL
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
RATE=${RATE:-1000}
DURATION=${DURATION:-20s}
CONNS=${CONNS:-4}
LABEL=${LABEL:-latency}

cd "$ROOT"
if [ -z "${NOBUILD:-}" ]; then
    echo "== build (release)"
    cargo build --release --bin cen-poller --example push_latency
fi
echo "== cen-poller $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(uname -sr)"
echo "== load: $(cut -d' ' -f1-3 /proc/loadavg)"
"$ROOT/target/release/examples/push_latency" --rate "$RATE" --duration "$DURATION" --connections "$CONNS" \
    --bin "$ROOT/target/release/cen-poller" --label "$LABEL" \
    ${PG_DSN:+--pg-dsn "$PG_DSN" --instances "${INSTANCES:-1}"}

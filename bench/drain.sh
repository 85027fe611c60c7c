#!/usr/bin/env bash
# Drain rate per sink: a backlog of N notifications (default 100,000) already in the state
# database, delivered through the file, postgres and nats sinks one after the other, release
# build. Needs Debian's postgresql and nats-server packages (bash .ci/run installs them).
# Prints a Markdown table; BENCHMARKS.md ("Drain rate per sink") keeps the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-100000}"
sinks="${2:-file,postgres,nats,http,command}"
echo "cen-poller $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $(uname -sr)"
cargo bench --bench drain -- --count "$count" --sinks "$sinks"

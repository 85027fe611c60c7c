#!/usr/bin/env bash
# The API cost of a live stream (BENCHMARKS.md, "Requests per poll cycle"): requests per
# steady-state cycle and notifications read per new one at 1, 5 and 50/s, lookback 15 m and
# 1 h, the whole-window walk against the split walk, on the in-process simulator with its
# clock moved on 5 s per cycle. The figures are counts, not timings: any build and machine
# gives the same ones (up to the jitter of whole-second Date headers), so a debug build does.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "cen-poller $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) cores, $(uname -sr)"
cargo run --quiet --example poll_cycle_cost -- "${1:-30}"

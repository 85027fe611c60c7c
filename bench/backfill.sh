#!/usr/bin/env bash
# The backfill benchmark (see BENCHMARKS.md).
#
# Backfills COUNT simulated notifications (all seven subjects, the simulator's realistic
# bodies, OAuth signatures verified) into the file sink on a fresh state database, and
# reports notifications/s and the peak RSS of the cen-poller process. In the same run, as a
# baseline, the same records are inserted with the sqlite3 command-line tool into a fresh
# database with the store's notifications table and index, WAL + synchronous=FULL, one
# transaction per 200 rows.
#
# Usage: bench/backfill.sh            (from anywhere; builds --release first)
# Environment:
#   COUNT=1000000     notifications
#   PAGE_SIZE=1000    poll.page_size (the simulator caps a page at 1000)
#   SPAN_HOURS=165    the notifications are spread evenly over this many hours, ending
#                     about 36 minutes before the start of the run (inside the 7-day retention)
#   SEED=42           the simulator's seed
#   KEEP=1            keep the work directory (printed at the end with its size: ~4.5 GB
#                     for 1,000,000; delete it when done)
#   SKIP_BUILD=1      use the existing binary (BIN=..., default target/release/cen-poller)
#   SKIP_BASELINE=1   skip the sqlite3 baseline
#   WRAP="perf record -e cpu-clock -g -o /tmp/perf.data --"
#                     a command prefix for the backfill process (profiling; the figures
#                     then include the wrapper)
#   SIM_WRAP=...      the same for the simulator process
#   SINK_EXTRA=...    extra TOML lines for the file sink (e.g. a subjects filter)
#   POLL_EXTRA=...    extra TOML lines for [poll] (e.g. max_window = "24h")
#   STATE=...         the [state] section's lines instead of the SQLite file, e.g.
#                     STATE="backend = \"postgres\"
#                     url = \"$(bench/postgres.sh start /tmp/pg)\"" (see bench/postgres.sh)
set -euo pipefail

COUNT=${COUNT:-1000000}
PAGE_SIZE=${PAGE_SIZE:-1000}
SPAN_HOURS=${SPAN_HOURS:-165}
SEED=${SEED:-42}
BASELINE_TX_ROWS=200

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${BIN:-$ROOT/target/release/cen-poller}
TIME=/usr/bin/time

for tool in openssl python3 sqlite3 curl "$TIME"; do
    command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 2; }
done

if [[ -z ${SKIP_BUILD:-} ]]; then
    echo "== cargo build --release" >&2
    (cd "$ROOT" && cargo build --release --quiet)
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cen-bench.XXXXXX")
SIM_PID=
cleanup() {
    if [[ -n $SIM_PID ]] && kill -0 "$SIM_PID" 2>/dev/null; then
        kill "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
    fi
    if [[ -n ${KEEP:-} ]]; then
        echo "bench: work directory kept: $WORK ($(du -sh "$WORK" 2>/dev/null | cut -f1); delete it when done)" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- The simulator -------------------------------------------------------------------
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$WORK/key.pem" 2>/dev/null
openssl pkey -in "$WORK/key.pem" -pubout -out "$WORK/public.pem"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

# Item i is created at stream_start + i/rate, stream_start = (simulator start) - backlog.
# The backlog is 36 minutes longer than the span, so the last notification is ~36 minutes
# old: well behind poll.settle, and the range below ends before "now - settle".
NOW=$(date -u +%s)
BACKLOG_MIN=$((SPAN_HOURS * 60 + 36))
RATE=$(python3 -c "print(repr($COUNT / ($SPAN_HOURS * 3600.0)))")
FROM=$(date -u -d "@$((NOW - BACKLOG_MIN * 60 - 60))" +%Y-%m-%dT%H:%M:%SZ)
TO=$(date -u -d "@$((NOW - 30 * 60))" +%Y-%m-%dT%H:%M:%SZ)

${SIM_WRAP:-} "$BIN" simulate --listen "127.0.0.1:$PORT" --seed "$SEED" --count "$COUNT" \
    --backlog "${BACKLOG_MIN}m" --rate "$RATE" \
    --public-key "$WORK/public.pem" --consumer-key bench-consumer-key \
    >"$WORK/simulator.log" 2>&1 &
SIM_PID=$!
for _ in $(seq 100); do
    # Unsigned: a 401 from the gateway check means it is serving.
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/x/notifications" || true)
    [[ $code == 401 ]] && break
    kill -0 "$SIM_PID" 2>/dev/null || { cat "$WORK/simulator.log" >&2; exit 1; }
    sleep 0.1
done
[[ $code == 401 ]] || { echo "bench: the simulator did not come up" >&2; exit 1; }

# --- The backfill ----------------------------------------------------------------------
STATE_TOML=${STATE:-'path = "state/state.db"'}
cat >"$WORK/config.toml" <<EOF
[api]
base_url = "http://127.0.0.1:$PORT/commercial-event-notifications"
consumer_key = "bench-consumer-key"
signing_key = "key.pem"
timeout = "30s"

[poll]
page_size = $PAGE_SIZE
${POLL_EXTRA:-}

[state]
$STATE_TOML

[log]
format = "text"
level = "info"

[[sinks]]
name = "archive"
type = "file"
path = "out/notifications.jsonl"
${SINK_EXTRA:-}
EOF

sim_cpu_ticks() { awk '{print $14 + $15}' "/proc/$SIM_PID/stat"; }
TICKS=$(getconf CLK_TCK)

echo "== backfill of $COUNT notifications, $FROM..$TO, page_size $PAGE_SIZE" >&2
SIM_CPU0=$(sim_cpu_ticks)
set +e
"$TIME" -v -o "$WORK/time.txt" ${WRAP:-} "$BIN" --config "$WORK/config.toml" --backfill "$FROM..$TO" \
    >"$WORK/summary.txt" 2>"$WORK/backfill.log"
STATUS=$?
set -e
SIM_CPU1=$(sim_cpu_ticks)
if [[ $STATUS != 0 ]]; then
    echo "bench: the backfill exited with $STATUS" >&2
    tail -20 "$WORK/backfill.log" >&2
    cat "$WORK/summary.txt" >&2
    exit 1
fi
kill "$SIM_PID" && wait "$SIM_PID" 2>/dev/null || true
SIM_PID=

# "Elapsed (wall clock) time (h:mm:ss or m:ss): 0:21.34" -> seconds
wall_seconds() {
    awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + p[i]
        print s }' "$1"
}
field() { awk -F': ' -v k="$2" '$1 ~ k {print $2}' "$1"; }

WALL=$(wall_seconds "$WORK/time.txt")
RSS_KB=$(field "$WORK/time.txt" "Maximum resident set size")
USER_S=$(field "$WORK/time.txt" "User time")
SYS_S=$(field "$WORK/time.txt" "System time")
SIM_CPU_S=$(python3 -c "print(f'{($SIM_CPU1 - $SIM_CPU0) / $TICKS:.1f}')")

# --- Check the sink: COUNT lines, COUNT distinct ids -------------------------------------
SINK=$WORK/out/notifications.jsonl
python3 - "$SINK" "$COUNT" <<'EOF'
import json, sys
path, want = sys.argv[1], int(sys.argv[2])
ids, lines, subjects = set(), 0, {}
with open(path, "rb") as f:
    for line in f:
        lines += 1
        r = json.loads(line)
        ids.add(r["id"])
        subjects[r["subject"]] = subjects.get(r["subject"], 0) + 1
if lines != want or len(ids) != want:
    sys.exit(f"bench: the sink has {lines} lines and {len(ids)} distinct ids, expected {want}")
print(f"sink: {lines} lines, {len(ids)} distinct ids, {len(subjects)} subjects", file=sys.stderr)
EOF
SINK_BYTES=$(stat -c %s "$SINK")

# --- The baseline: the same records with the sqlite3 CLI ---------------------------------
BASE_WALL=
if [[ -z ${SKIP_BASELINE:-} ]]; then
    echo "== baseline: sqlite3, one transaction per $BASELINE_TX_ROWS rows" >&2
    # Generated before timing. The notifications table and its index as the store has
    # them (src/store/migrations.rs), the store's page size and cache size, and its
    # durability settings.
    python3 - "$SINK" "$WORK/baseline.sql" "$BASELINE_TX_ROWS" <<'EOF'
import json, sys
from datetime import datetime
src, dst, per_tx = sys.argv[1], sys.argv[2], int(sys.argv[3])
def q(s):
    return "NULL" if s is None else "'" + s.replace("'", "''") + "'"
def ms(rfc3339):
    return int(datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp() * 1000)
with open(src, "rb") as f, open(dst, "w") as out:
    out.write("""PRAGMA page_size = 8192;
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA cache_size = -16384;
CREATE TABLE notifications (
    id                TEXT    NOT NULL PRIMARY KEY,
    source            TEXT    NOT NULL CHECK (source IN ('mastercard-cen', 'vgs')),
    subject           TEXT    NOT NULL,
    subscription_name TEXT,
    created_ms        INTEGER NOT NULL,
    created_raw       TEXT    NOT NULL,
    received_via      TEXT    NOT NULL CHECK (received_via IN ('push', 'pull', 'backfill')),
    first_seen_ms     INTEGER NOT NULL,
    recovered         INTEGER NOT NULL DEFAULT 0 CHECK (recovered IN (0, 1)),
    json              TEXT    NOT NULL
);
CREATE INDEX notifications_by_created ON notifications (source, created_ms, subscription_name);
""")
    n = 0
    for line in f:
        r = json.loads(line)
        if n % per_tx == 0:
            out.write("BEGIN;\n")
        # The notification exactly as the sink embedded it (the record is line-sliced so
        # no re-serialisation changes a byte).
        text = line.decode().rstrip("\n")
        body = text[text.index(',"notification":') + len(',"notification":'):-1]
        out.write("INSERT INTO notifications VALUES (%s,%s,%s,%s,%d,%s,%s,%d,0,%s);\n" % (
            q(r["id"]), q(r["source"]), q(r["subject"]), q(r["subscription_name"]),
            ms(r["created_timestamp"]), q(r["created_timestamp"]), q(r["received_via"]),
            ms(r["first_seen_at"]), q(body)))
        n += 1
        if n % per_tx == 0:
            out.write("COMMIT;\n")
    if n % per_tx != 0:
        out.write("COMMIT;\n")
EOF
    mkdir -p "$WORK/baseline"
    sync
    "$TIME" -v -o "$WORK/baseline-time.txt" \
        sqlite3 "$WORK/baseline/baseline.db" <"$WORK/baseline.sql" >/dev/null
    BASE_WALL=$(wall_seconds "$WORK/baseline-time.txt")
    BASE_USER=$(field "$WORK/baseline-time.txt" "User time")
    BASE_SYS=$(field "$WORK/baseline-time.txt" "System time")
    BASE_ROWS=$(sqlite3 "$WORK/baseline/baseline.db" "SELECT count(*) FROM notifications")
    [[ $BASE_ROWS == "$COUNT" ]] || { echo "bench: baseline has $BASE_ROWS rows" >&2; exit 1; }
fi

# --- Report ----------------------------------------------------------------------------
python3 - <<EOF
count, wall, rss_kb = $COUNT, $WALL, $RSS_KB
base = "$BASE_WALL"
rate = count / wall
print(f"notifications        {count}")
print(f"page_size            $PAGE_SIZE")
print(f"sink bytes           {$SINK_BYTES} ({$SINK_BYTES / count:.0f} per record)")
print(f"cen-poller wall      {wall:.2f} s (user $USER_S s, sys $SYS_S s)")
print(f"cen-poller rate      {rate:,.0f} notifications/s")
print(f"cen-poller peak RSS  {rss_kb / 1024:.1f} MiB")
print(f"simulator CPU        $SIM_CPU_S s during the backfill")
if base:
    b = float(base)
    print(f"sqlite3 wall         {b:.2f} s (user ${BASE_USER:-} s, sys ${BASE_SYS:-} s)")
    print(f"sqlite3 rate         {count / b:,.0f} rows/s")
    print(f"ratio                {rate / (count / b):.2f} (cen-poller / sqlite3)")
print(f"targets              rate >= 50,000/s: {'met' if rate >= 50000 else 'NOT met'}; "
      f"peak RSS <= 64 MiB: {'met' if rss_kb <= 64 * 1024 else 'NOT met'}")
EOF
echo "-- cen-poller's own summary:"
cat "$WORK/summary.txt"

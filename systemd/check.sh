#!/usr/bin/env bash
# Checks the unit as CI does: `systemd-analyze verify` (with the unit pointed at the binary
# just built, since /usr/local/bin/cen-poller is not installed on a build machine), and the
# `systemd-analyze security` exposure score, which must stay at 2.0 or lower.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=${1:-$PWD/target/debug/cen-poller}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed "s|/usr/local/bin/cen-poller|$binary|g; s|^Documentation=.*|Documentation=file:$PWD/README.md|" \
  systemd/cen-poller.service > "$tmp/cen-poller.service"
systemd-analyze verify "$tmp/cen-poller.service"
score=$(systemd-analyze security --offline=true "$tmp/cen-poller.service" 2>/dev/null \
  | sed -n 's/.*Overall exposure level for cen-poller.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security: exposure $score"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || { echo "exposure $score is above 2.0"; exit 1; }

#!/usr/bin/env bash
# Writes the Debian package's generated files into packaging/generated/ from their sources:
#   cen-poller.service   systemd/cen-poller.service with the packaged paths and a static
#                        system user (the package creates `cen-poller`; see postinst)
#   cen-poller.1         the man page, from the binary's command line (`cen-poller manpage`)
#   cen-poller.bash, _cen-poller, cen-poller.fish   completions (`cen-poller completions SHELL`)
#
# They are committed so that `cargo deb` alone builds a complete package from a fresh clone
# (cargo-deb has no post-build hook, and a build script cannot run the binary it builds).
# `--check` regenerates into a temporary directory and fails when the committed files
# differ, which CI runs (packaging/check.sh): a changed flag or subcommand without
# `bash packaging/generate.sh` breaks the build, not the man page.
#
# Usage: bash packaging/generate.sh [--check] [BINARY]   (default BINARY: target/debug/cen-poller)
set -euo pipefail
cd "$(dirname "$0")/.."
check=0
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
binary=${1:-target/debug/cen-poller}
[ -x "$binary" ] || { echo "no binary at $binary: run cargo build first" >&2; exit 1; }

out=packaging/generated
if ((check)); then out=$(mktemp -d); trap 'rm -rf "$out"' EXIT; fi
mkdir -p "$out"

# The packaged unit: /usr/bin instead of /usr/local/bin, the packaged documentation, and the
# package's static user instead of DynamicUser= (a dynamic user's state would live in
# /var/lib/private, and a purge must be able to leave the ledger at /var/lib/cen-poller,
# owned by a user that still exists). DynamicUser='s implied hardening is set explicitly in
# the unit already (ProtectSystem=strict, ProtectHome, PrivateTmp, RemoveIPC, …).
sed -e 's|/usr/local/bin/cen-poller|/usr/bin/cen-poller|g' \
    -e 's|^Documentation=.*|Documentation=man:cen-poller(1) file:/usr/share/doc/cen-poller/README.md|' \
    -e 's|^# cen-poller as a systemd service. Install: see README.md, "Install".|# cen-poller as a systemd service, as installed by the Debian package (generated from\n# systemd/cen-poller.service by packaging/generate.sh; edit that one). Override settings\n# with `systemctl edit cen-poller`, not here.|' \
    -e 's|^DynamicUser=yes|User=cen-poller\nGroup=cen-poller|' \
    systemd/cen-poller.service > "$out/cen-poller.service"
grep -q '^User=cen-poller' "$out/cen-poller.service" || { echo "systemd/cen-poller.service has no DynamicUser=yes line to replace" >&2; exit 1; }

"$binary" manpage > "$out/cen-poller.1"
"$binary" completions bash > "$out/cen-poller.bash"
"$binary" completions zsh > "$out/_cen-poller"
"$binary" completions fish > "$out/cen-poller.fish"

if ((check)); then
  if ! diff -ru packaging/generated "$out"; then
    echo "packaging/generated/ is out of date: run  bash packaging/generate.sh  and commit the result" >&2
    exit 1
  fi
  echo "packaging/generated/ is up to date"
fi

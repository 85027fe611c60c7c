#!/usr/bin/env bash
# CI check of the Debian package, run by .ci/run (as root, or with sudo):
#   - packaging/generated/ is what packaging/generate.sh makes now (unit, man page, completions);
#   - the alert rules load and their unit tests pass (promtool);
#   - `cargo deb` builds the package and lintian reports no errors;
#   - installed on this machine, the files are where README "Install" says, with their
#     modes and owners; the unit passes `systemd-analyze verify` and scores 2.0 or lower;
#     the service is not enabled; `check-config` on the shipped template exits 2 naming the
#     missing credential; a reinstall keeps an edited config;
#   - `remove` keeps the configuration and the state; `purge` removes every file of the
#     package and /etc/cen-poller, and keeps /var/lib/cen-poller (the ledger) with a note.
# The CI machine is a container without a running systemd: the maintainer scripts must
# not need one. The script refuses to run where cen-poller is really installed or a real
# state directory exists, and leaves the machine as it found it.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
fail() { echo "packaging/check.sh: $*" >&2; exit 1; }

bash packaging/generate.sh --check "${1:-target/debug/cen-poller}"

promtool check rules packaging/prometheus/cen-poller.rules.yml
(cd packaging/prometheus && promtool test rules cen-poller.rules.test.yml)

if dpkg-query -W -f='${Status}' cen-poller 2>/dev/null | grep -q "installed"; then
  fail "cen-poller is installed on this machine; this check installs and purges it, so run it elsewhere"
fi
if [ -e /var/lib/cen-poller ]; then
  # A previous run leaves only its note; anything else is somebody's ledger.
  if [ "$($sudo find /var/lib/cen-poller -mindepth 1 ! -name README.purged ! -name state.db | wc -l)" -ne 0 ] \
    || $sudo test -s /var/lib/cen-poller/state.db; then
    fail "/var/lib/cen-poller holds a state database; not touching it"
  fi
  $sudo rm -rf /var/lib/cen-poller
fi

deb=$(cargo deb --locked | grep '\.deb$' | tail -n 1)
[ -f "$deb" ] || fail "cargo deb did not report a package (got: $deb)"
deb=$(realpath "$deb")
echo "package: $deb"
lintian --fail-on error "$deb"

export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -qq --no-install-recommends "$deb" >/dev/null
files=$(dpkg -L cen-poller)

# The files, where README "Install" says.
for f in /usr/bin/cen-poller /usr/lib/systemd/system/cen-poller.service /etc/cen-poller/config.toml \
  /usr/share/cen-poller/certs/digicert-assured-id-root-g2.pem /usr/share/man/man1/cen-poller.1.gz \
  /usr/share/bash-completion/completions/cen-poller /usr/share/zsh/vendor-completions/_cen-poller \
  /usr/share/fish/vendor_completions.d/cen-poller.fish /usr/share/doc/cen-poller/README.md \
  /usr/share/doc/cen-poller/changelog.Debian.gz /usr/share/doc/cen-poller/copyright \
  /usr/share/cen-poller/prometheus/cen-poller.rules.yml /usr/share/cen-poller/grafana/cen-poller.json; do
  grep -qx "$f" <<<"$files" || fail "$f is not in the package: $files"
  [ -f "$f" ] || fail "$f was not installed"
done
cmp -s /etc/cen-poller/config.toml config/cen-poller.toml || fail "/etc/cen-poller/config.toml is not config/cen-poller.toml"
dpkg-query -W -f='${Conffiles}\n' cen-poller | grep -q "^ /etc/cen-poller/config.toml " || fail "config.toml is not a conffile"
zcat /usr/share/man/man1/cen-poller.1.gz | grep -q '^\.TH cen-poller' || fail "the man page is not roff for cen-poller"
grep -q 'complete' /usr/share/bash-completion/completions/cen-poller || fail "the bash completion is empty"
/usr/bin/cen-poller --version
getent passwd cen-poller >/dev/null || fail "postinst did not create the system user cen-poller"
mode() { $sudo stat -c '%a %U' "$1"; }
[ "$(mode /etc/cen-poller/credentials)" = "700 root" ] || fail "/etc/cen-poller/credentials is $(mode /etc/cen-poller/credentials)"
[ "$(mode /var/lib/cen-poller)" = "700 cen-poller" ] || fail "/var/lib/cen-poller is $(mode /var/lib/cen-poller)"
[ "$(mode /usr/bin/cen-poller)" = "755 root" ] || fail "/usr/bin/cen-poller is $(mode /usr/bin/cen-poller)"

# The unit, and that installing did not enable (or start) it.
unit=/usr/lib/systemd/system/cen-poller.service
grep -qx 'ExecStart=/usr/bin/cen-poller --config /etc/cen-poller/config.toml' "$unit" || fail "ExecStart is not /usr/bin/cen-poller"
systemd-analyze verify "$unit"
score=$(systemd-analyze security --offline=true "$unit" 2>/dev/null \
  | sed -n 's/.*Overall exposure level for cen-poller.service: \([0-9.]*\).*/\1/p')
echo "systemd-analyze security (installed unit): exposure $score"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.0) }' || fail "exposure $score is above 2.0"
if compgen -G "/etc/systemd/system/*.wants/cen-poller.service" >/dev/null; then
  fail "installing enabled the service: $(ls /etc/systemd/system/*.wants/cen-poller.service)"
fi
enabled=$(systemctl is-enabled cen-poller 2>/dev/null || true)
[ "$enabled" = "disabled" ] || fail "systemctl is-enabled cen-poller says '$enabled', not 'disabled'"

# The shipped template without credentials: exit 2, naming the first one missing.
set +e
out=$(/usr/bin/cen-poller --config /etc/cen-poller/config.toml check-config 2>&1)
status=$?
set -e
echo "check-config on the template: exit $status: $out"
[ "$status" -eq 2 ] || fail "check-config exited $status, not 2"
grep -q 'consumer-key' <<<"$out" || fail "check-config does not name the missing credential consumer-key"

# A reinstall (dpkg runs postinst as for an upgrade) keeps an edited configuration.
echo "# edited by packaging/check.sh" | $sudo tee -a /etc/cen-poller/config.toml >/dev/null
$sudo apt-get install -y -qq --reinstall -o Dpkg::Options::=--force-confold "$deb" >/dev/null
grep -q '^# edited by packaging/check.sh$' /etc/cen-poller/config.toml || fail "the reinstall overwrote the edited config"

# remove keeps configuration and state.
$sudo install -m 0600 -o cen-poller -g cen-poller /dev/null /var/lib/cen-poller/state.db
echo "ledger" | $sudo tee /var/lib/cen-poller/state.db >/dev/null
$sudo apt-get remove -y -qq cen-poller >/dev/null
[ ! -e /usr/bin/cen-poller ] || fail "remove left /usr/bin/cen-poller"
[ -f /etc/cen-poller/config.toml ] || fail "remove deleted the configuration"
[ -d /etc/cen-poller/credentials ] || fail "remove deleted the credentials directory"
$sudo test -s /var/lib/cen-poller/state.db || fail "remove deleted the state database"

# purge removes everything of the package and its configuration, keeps the ledger with a note.
$sudo apt-get purge -y -qq cen-poller >/dev/null
status=$(dpkg-query -W -f='${Status}' cen-poller 2>/dev/null || true)
case "$status" in "" | *not-installed) ;; *) fail "after purge dpkg says cen-poller is '$status'" ;; esac
while read -r f; do
  [ -d "$f" ] && continue
  [ ! -e "$f" ] || fail "purge left $f"
done <<<"$files"
for f in /etc/cen-poller /usr/share/cen-poller /usr/share/doc/cen-poller /etc/systemd/system/cen-poller.service \
  /var/lib/systemd/deb-systemd-helper-enabled/cen-poller.service.dsh-also \
  /var/lib/systemd/deb-systemd-helper-masked/cen-poller.service; do
  [ ! -e "$f" ] || fail "purge left $f"
done
$sudo test -s /var/lib/cen-poller/state.db || fail "purge deleted the state database"
$sudo grep -q 'rm -rf /var/lib/cen-poller' /var/lib/cen-poller/README.purged || fail "purge left no note in /var/lib/cen-poller"

# Leave the machine as it was.
$sudo rm -rf /var/lib/cen-poller
$sudo deluser --system --quiet cen-poller >/dev/null 2>&1 || true
$sudo delgroup --system --quiet cen-poller >/dev/null 2>&1 || true
echo "packaging/check.sh: ok"

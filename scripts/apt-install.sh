#!/usr/bin/env bash
# apt-install.sh PACKAGE...: install the Debian packages that are missing (none: no apt call).
# Shared by the install-*-deps.sh scripts; needs root or sudo when something is missing.
# Before the first install on a machine, the list of installed packages is saved to
# $WRTEST_STATE_DIR/dpkg-before.txt, so scripts/reset-test-machine.sh can purge exactly what
# these scripts (and the packages' dependencies) added.
set -euo pipefail
STATE_DIR="${WRTEST_STATE_DIR:-/var/lib/wruntime-test}"
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ! -f "$STATE_DIR/dpkg-before.txt" ]; then
  $SUDO mkdir -p "$STATE_DIR"
  dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" {print $2}' | sort \
    | $SUDO tee "$STATE_DIR/dpkg-before.txt.tmp" >/dev/null
  $SUDO mv "$STATE_DIR/dpkg-before.txt.tmp" "$STATE_DIR/dpkg-before.txt"
fi
echo "==> apt-get install ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

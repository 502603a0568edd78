#!/usr/bin/env bash
# Debian packages bench/proxy.py compares against (nginx, haproxy) and drives load with (wrk).
# Idempotent and quick when everything is there; needs root (or sudo). apt does not start the
# daemons here: the bench runs them itself with its own configs on loopback ports.
set -euo pipefail
PACKAGES=(nginx haproxy wrk)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "==> apt-get install ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postinst may start nginx when a service manager is present; the bench wants it idle.
if command -v nginx >/dev/null && [ -f /run/nginx.pid ]; then
  $SUDO nginx -s stop 2>/dev/null || true
fi

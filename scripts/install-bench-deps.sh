#!/usr/bin/env bash
# Debian packages bench/proxy.py compares against (nginx, haproxy) and drives load with (wrk),
# and valgrind for bench/proxy_instructions.py.
# Idempotent and quick when everything is there; needs root (or sudo). apt does not start the
# daemons here: the bench runs them itself with its own configs on loopback ports.
set -euo pipefail
PACKAGES=(nginx haproxy wrk valgrind)
bash "$(dirname "$0")/apt-install.sh" "${PACKAGES[@]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Debian's postinst may start nginx when a service manager is present; the bench wants it idle.
if command -v nginx >/dev/null && [ -f /run/nginx.pid ]; then
  $SUDO nginx -s stop 2>/dev/null || true
fi

#!/usr/bin/env bash
# Debian packages the test infrastructure needs (PostgreSQL, sshd, systemd for the fake
# systemd hosts, namespaces tooling). Docker: scripts/install-docker-deps.sh.
# Idempotent and quick when everything is already there; needs root (or sudo).
set -euo pipefail
PACKAGES=(postgresql openssh-server openssh-client sudo iproute2 util-linux procps systemd dbus python3-venv)
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

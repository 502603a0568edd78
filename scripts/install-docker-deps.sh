#!/usr/bin/env bash
# Debian packages the Docker test fixtures need: the daemon (docker.io: dockerd, containerd,
# runc, docker-proxy), docker-compose (v1) for compose deploys, and debootstrap for the
# locally built base image (no registry is reachable from the tests).
# Idempotent and quick when everything is already there; needs root (or sudo).
set -euo pipefail
PACKAGES=(docker.io docker-compose debootstrap)
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

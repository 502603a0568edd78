#!/usr/bin/env bash
# Debian packages the Docker test fixtures need: the daemon (docker.io: dockerd, containerd,
# runc, docker-proxy), docker-compose (v1) for compose deploys, and debootstrap for the
# locally built base image (no registry is reachable from the tests).
# Idempotent and quick when everything is already there; needs root (or sudo).
set -euo pipefail
PACKAGES=(docker.io docker-compose debootstrap)
bash "$(dirname "$0")/apt-install.sh" "${PACKAGES[@]}"

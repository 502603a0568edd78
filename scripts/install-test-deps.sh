#!/usr/bin/env bash
# Debian packages the test infrastructure needs (PostgreSQL, sshd, systemd for the fake
# systemd hosts, namespaces tooling). Docker: scripts/install-docker-deps.sh.
# Idempotent and quick when everything is already there; needs root (or sudo).
set -euo pipefail
PACKAGES=(postgresql openssh-server openssh-client sudo iproute2 util-linux procps systemd dbus python3-venv)
bash "$(dirname "$0")/apt-install.sh" "${PACKAGES[@]}"

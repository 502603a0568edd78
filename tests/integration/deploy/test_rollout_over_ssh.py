"""A target's whole rollout over SSH on a real systemd host, with a small contract-shaped
bundle: preflight, upload once (with progress), install as root, switch, restart, prune
root-owned releases, remove."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from tests.infra.systemd_hosts import SystemdHost
from tests.integration.deploy.releases import wait_down, wait_for_body
from tests.integration.deploy.support import record_ssh_commands, transport_for
from wrctl.bundle.build import Bundle
from wrctl.bundle.manifest import make_manifest
from wrctl.bundle.tarball import build_tarball
from wrctl.deploy.preflight import check_and_prepare
from wrctl.deploy.rollout import Rollout, TargetHost
from wrctl.deploy.secretfile import put_secret_file
from wrctl.deploy.systemd import SystemdFormat

WORKDIR = "/opt/wrtest-rollout"
TARGET = "node-a"
PORT = 8083
# install.sh as the contract has it: renders systemd/ into etc/systemd/, runs as root for
# systemd (the root-owned marker stands for the venv it would build), starts nothing.
INSTALL = """#!/bin/sh
set -eu
RELEASE=$(cd "$(dirname "$0")" && pwd)
WORKDIR=$1; TARGET=$2; FORMAT=$3
[ "$FORMAT" = systemd ] && [ "$(id -u)" = 0 ] || { echo "want root + systemd" >&2; exit 9; }
mkdir -p "$RELEASE/etc/systemd" "$RELEASE/venv"
for f in "$RELEASE"/systemd/*; do
  sed -e "s#@CURRENT@#$WORKDIR/$TARGET/current#g" -e "s#@PYTHON@#$WR_PYTHON#g" "$f" \\
    > "$RELEASE/etc/systemd/$(basename "$f")"
done
touch "$RELEASE/venv/root-owned"
"""


def _bundle(tmp_path: Path, address: str, tag: str) -> Bundle:
    files = {
        "install.sh": INSTALL,
        "www/index.html": f"{tag}\n",
        f"systemd/wr-{TARGET}.target": (
            "[Unit]\nWants=wr-a-web.service\n[Install]\nWantedBy=multi-user.target\n"
        ),
        "systemd/wr-a-web.service": (
            f"[Unit]\nPartOf=wr-{TARGET}.target\n[Service]\nUser=deploy\n"
            f"ExecStart=@PYTHON@ -m http.server {PORT} --bind {address} "
            "--directory @CURRENT@/www\n"
        ),
    }
    raw = {k: v.encode() for k, v in files.items()}
    # a real manifest: the rollout verifies every file against it before installing
    raw["manifest.json"] = make_manifest(
        kind="node",
        cluster="c",
        target=TARGET,
        node="a",
        runtime_version="0",
        platform={"tag": "none", "python": "3.11", "machine": platform.machine()},
        modules=[],
        programs=["wr-a-web"],
        host_secrets=[],
        files=raw,
    )
    path = tmp_path / f"{tag}.tar.gz"
    _, digest = build_tarball(raw, path)
    return Bundle(TARGET, "node", path, f"sha256:{digest}", {})


def test_rollout_over_ssh_on_systemd(systemd_hosts: list[SystemdHost], tmp_path: Path) -> None:
    host = systemd_hosts[1]
    url = f"http://{host.address}:{PORT}/"
    t = transport_for(host)
    target = TargetHost(t, WORKDIR, SystemdFormat(t, WORKDIR), "", "/usr/bin/python3", sudo=True)
    rollout = Rollout(target, TARGET)
    try:
        releases = []
        for tag in ("r1", "r2", "r3", "r4"):
            bundle = _bundle(tmp_path, host.address, tag)
            check_and_prepare(target, bundle.path)
            progress: list[tuple[int, int]] = []
            assert rollout.upload(bundle, lambda d, n, seen=progress: seen.append((d, n)))
            assert progress[-1] == (bundle.path.stat().st_size,) * 2
            assert not rollout.upload(bundle)  # already there: nothing sent
            releases.append(rollout.unpack_and_install(bundle))
            rollout.switch(releases[-1])
            rollout.restart()
            wait_for_body(url, tag)
        assert rollout.current_release() == releases[-1]
        assert rollout.prune(keep=3) == [releases[0]]  # root-owned files and all
        left = t.run(f"ls {WORKDIR}/{TARGET}/releases").stdout.split()
        assert sorted(left) == sorted(releases[1:])

        rollout.switch(releases[1])  # back to an older release: it goes live again
        rollout.restart()
        wait_for_body(url, "r2")

        rollout.remove()
        wait_down(url)
        assert not t.run(f"test -e {WORKDIR}/{TARGET}", check=False).ok
        assert not host.host_path("/etc/systemd/system/wr-a-web.service").exists()
    finally:
        SystemdFormat(t, WORKDIR).remove(TARGET)
        t.run(f"rm -rf {WORKDIR}", sudo=True, check=False)
        t.close()


def test_a_secret_file_placed_as_root_never_crosses_a_command_line(
    systemd_hosts: list[SystemdHost], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into a dir the deploy user cannot enter (like a service user's tls/ or data/), taking
    that dir's owner; staged in a dir the deploy user owns, and nothing left there."""
    host = systemd_hosts[0]
    workdir, secret = "/opt/wrtest-secret", b"s3cret-for-root-only"
    private = f"{workdir}/private"
    t = transport_for(host)
    try:
        t.run(f"install -d -o deploy {workdir} && install -d -m 700 -o nobody {private}", sudo=True)
        sent = record_ssh_commands(monkeypatch)
        for _ in range(2):  # a second write replaces the first
            put_secret_file(
                t,
                secret,
                f"{private}/key",
                staging=workdir,
                sudo=True,
                owner=f"--reference={private}",
            )
        assert host.inside("stat", "-c", "%a %U", f"{private}/key").stdout.split() == [
            "600",
            "nobody",
        ]
        assert host.inside("cat", f"{private}/key").stdout == secret.decode()
        assert t.run(f"ls -A {workdir}").stdout.split() == ["private"]
        assert sent and not any("s3cret" in c for c in sent)
    finally:
        t.run(f"rm -rf {workdir}", sudo=True, check=False)
        t.close()

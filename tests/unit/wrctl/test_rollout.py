"""A target's rollout steps on a host, through the real local transport (no services)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wrctl.bundle.build import Bundle
from wrctl.bundle.tarball import build_tarball
from wrctl.deploy.rollout import Rollout, TargetHost
from wrctl.deploy.transport import HostCommandError, LocalTransport
from wrctl.errors import WrctlError


class _NoServices:
    """Stands in for a service format: these tests look at files, not processes."""

    name = "supervisor"
    install_as_root = False

    def __init__(self) -> None:
        self.calls: list[str] = []

    def ensure_running(self) -> None:
        self.calls.append("ensure_running")

    def restart(self, target: str) -> None:
        self.calls.append(f"restart {target}")

    def remove(self, target: str) -> None:
        self.calls.append(f"remove {target}")

    def log_tail(self, target: str, lines: int = 50) -> str:
        return ""


def _bundle(tmp_path: Path, marker: str) -> Bundle:
    install = b'#!/bin/sh\nset -eu\necho installed > "$(dirname "$0")/installed"\n'
    path = tmp_path / f"{marker}.tar.gz"
    _, digest = build_tarball({"install.sh": install, "marker": marker.encode()}, path)
    return Bundle("node-a", "node", path, f"sha256:{digest}", {})


@pytest.fixture
def rollout(tmp_path: Path) -> Rollout:
    transport = LocalTransport()
    host = TargetHost(transport, str(tmp_path / "host"), _NoServices(), "/usr/bin")  # type: ignore[arg-type]
    return Rollout(host, "node-a")


def test_upload_only_when_missing_then_switch(rollout: Rollout, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "one")
    assert rollout.upload(bundle) is True
    assert rollout.upload(bundle) is False  # already there, verified by sha256
    release = rollout.unpack_and_install(bundle)
    assert rollout.current_release() is None
    rollout.switch(release)
    current = tmp_path / "host" / "node-a" / "current"
    assert current.is_symlink() and (current / "marker").read_text() == "one"
    assert (current / "installed").exists()


def test_a_corrupted_upload_is_refused(rollout: Rollout, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "one")
    lying = Bundle(bundle.target, bundle.kind, bundle.path, "sha256:" + "0" * 64, {})
    with pytest.raises(WrctlError, match="uploaded bundle has sha256"):
        rollout.upload(lying)
    assert not list((tmp_path / "host" / "node-a" / "bundles").iterdir())


def test_switch_back_and_prune_keep_three(rollout: Rollout, tmp_path: Path) -> None:
    releases = []
    for marker in ("a", "b", "c", "d", "e"):
        bundle = _bundle(tmp_path, marker)
        rollout.upload(bundle)
        releases.append(rollout.unpack_and_install(bundle))
        rollout.switch(releases[-1])
    rollout.switch(releases[0])  # a rollback to the oldest
    pruned = set(rollout.prune(keep=3))
    left = {p.name for p in (tmp_path / "host" / "node-a" / "releases").iterdir()}
    assert releases[0] in left, "the current release is never pruned"
    assert len(left) == 4 and len(pruned) == 1
    assert not (tmp_path / "host" / "node-a" / "bundles" / f"{next(iter(pruned))}.tar.gz").exists()


def test_failing_host_command_names_it(rollout: Rollout) -> None:
    with pytest.raises(HostCommandError, match=r"local: `false` exited 1"):
        rollout.host.transport.run("false")


def test_remove_deletes_the_target(rollout: Rollout, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path, "one")
    rollout.upload(bundle)
    rollout.switch(rollout.unpack_and_install(bundle))
    rollout.remove()
    assert not (tmp_path / "host" / "node-a").exists()
    assert "remove node-a" in rollout.host.format.calls  # type: ignore[attr-defined]

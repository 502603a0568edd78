"""A target's rollout steps on a host, through the real local transport (no services)."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wrctl.bundle.build import Bundle
from wrctl.bundle.manifest import make_manifest
from wrctl.bundle.signing import public_key_b64, sign_manifest
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

    def forget_releases(self, target: str, releases: list[str]) -> None:
        self.calls.append(f"forget {target} {' '.join(sorted(releases))}")

    def log_tail(self, target: str, lines: int = 50) -> str:
        return ""


def _files(marker: str) -> dict[str, bytes]:
    install = b'#!/bin/sh\nset -eu\necho "$3" > "$(dirname "$0")/installed"\n'
    files = {"install.sh": install, "marker": marker.encode()}
    files["manifest.json"] = make_manifest(
        kind="node",
        cluster="c",
        target="node-a",
        node="a",
        runtime_version="0.1.0",
        platform={"tag": "none", "python": "any"},
        modules=[],
        programs=[],
        host_secrets=[],
        files=files,
    )
    return files


def _pack(tmp_path: Path, name: str, files: dict[str, bytes]) -> Bundle:
    path = tmp_path / f"{name}.tar.gz"
    _, digest = build_tarball(files, path)
    return Bundle("node-a", "node", path, f"sha256:{digest}", {})


def _bundle(tmp_path: Path, marker: str) -> Bundle:
    return _pack(tmp_path, marker, _files(marker))


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
    assert (current / "installed").read_text() == "supervisor\n"  # the format is passed


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
    # the format hears which releases went (Docker deletes their images)
    assert f"forget node-a {next(iter(pruned))}" in rollout.host.format.calls  # type: ignore[attr-defined]


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


def _releases(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "host" / "node-a" / "releases").iterdir())


def test_a_tampered_bundle_is_refused_before_install(rollout: Rollout, tmp_path: Path) -> None:
    files = _files("one")
    files["marker"] = b"changed after the manifest was written"
    bundle = _pack(tmp_path, "tampered", files)
    rollout.upload(bundle)
    with pytest.raises(WrctlError, match=r"refused before install: tampered file marker"):
        rollout.unpack_and_install(bundle)
    assert _releases(tmp_path) == []  # nothing unpacked stays, nothing installed


def test_trusted_keys_refuse_unsigned_and_foreign_signatures(
    rollout: Rollout, tmp_path: Path
) -> None:
    ours, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    trusted = [public_key_b64(ours)]
    unsigned = _bundle(tmp_path, "unsigned")
    rollout.upload(unsigned)
    with pytest.raises(WrctlError, match=r"unsigned bundle: manifest.sig is missing"):
        rollout.unpack_and_install(unsigned, trusted)

    files = _files("foreign")
    files["manifest.sig"] = sign_manifest(theirs, files["manifest.json"])
    foreign = _pack(tmp_path, "foreign", files)
    rollout.upload(foreign)
    with pytest.raises(WrctlError, match=r"does not match manifest.json for any trusted key"):
        rollout.unpack_and_install(foreign, trusted)

    files = _files("signed")
    files["manifest.sig"] = sign_manifest(ours, files["manifest.json"])
    files["manifest.json"] = files["manifest.json"].replace(b'"c"', b'"d"')  # edited after
    edited = _pack(tmp_path, "edited", files)
    rollout.upload(edited)
    with pytest.raises(WrctlError, match=r"does not match manifest.json"):
        rollout.unpack_and_install(edited, trusted)
    assert _releases(tmp_path) == []

    files = _files("signed")
    files["manifest.sig"] = sign_manifest(ours, files["manifest.json"])
    good = _pack(tmp_path, "good", files)
    rollout.upload(good)
    release = rollout.unpack_and_install(good, trusted)
    assert _releases(tmp_path) == [release]

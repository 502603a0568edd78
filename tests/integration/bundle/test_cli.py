"""`wrctl bundle` through the real CLI: byte-identical rebuilds with real wheels (from the
cache on the second run), inspect (text and JSON), verify, keygen and --sign."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.bundle.conftest import write_echo_cluster
from wrctl.bundle.tarball import build_tarball, read_tarball
from wrctl.bundle.wheelset import WheelSet

WRCTL = str(Path(sys.executable).parent / "wrctl")
pytestmark = pytest.mark.slow


def _wrctl(*args: str, cwd: Path, offline: bool = False) -> subprocess.CompletedProcess[str]:
    """The CLI; offline: in a new network namespace with nothing up (no PyPI)."""
    return subprocess.run(
        [*(["unshare", "--net"] if offline else []), WRCTL, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_bundle_inspect_verify_and_sign(
    tmp_path: Path, components: dict[str, Path], bundle_wheels: WheelSet
) -> None:
    cluster = write_echo_cluster(tmp_path, components["echo"])
    first = _wrctl("bundle", "cluster.toml", "-o", "one", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "wheels (cached)" in first.stderr and "packing node-a" in first.stderr  # progress
    # with the wheel cache warm, bundling needs no network at all
    second = _wrctl(
        "bundle", "cluster.toml", "--node", "a", "-o", "two", cwd=tmp_path, offline=True
    )
    assert second.returncode == 0, second.stderr
    names = ["bt-manager.tar.gz", "bt-node-a.tar.gz"]
    for name in names:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    node = tmp_path / "one" / "bt-node-a.tar.gz"
    files = read_tarball(node)
    assert {f"wheels/{p.name}" for p in bundle_wheels.files} == {
        n for n in files if n.startswith("wheels/")
    }

    text = _wrctl("bundle", "inspect", str(node), cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert "kind      node  target node-a  cluster bt" in text.stdout
    assert "example.echo@1.0.0" in text.stdout and "signed    no" in text.stdout
    as_json = json.loads(_wrctl("bundle", "inspect", str(node), "--json", cwd=tmp_path).stdout)
    assert as_json["manifest"]["platform"]["tag"] == bundle_wheels.target.platform
    assert as_json["manifest"]["programs"] == ["wr-a-proxy", "wr-a-engine-0"]

    ok = _wrctl("bundle", "verify", str(node), cwd=tmp_path)
    assert ok.returncode == 0 and "files match the manifest" in ok.stdout, ok.stderr
    files["config/engine-0.toml"] += b"# edited\n"
    tampered = tmp_path / "tampered.tar.gz"
    build_tarball(files, tampered)
    bad = _wrctl("bundle", "verify", str(tampered), cwd=tmp_path)
    assert bad.returncode == 1
    assert "tampered file config/engine-0.toml" in bad.stderr

    keygen = _wrctl("bundle", "keygen", "keys/deploy.pem", cwd=tmp_path)
    assert keygen.returncode == 0, keygen.stderr
    public = (tmp_path / "keys" / "deploy.pem.pub").read_text().strip()
    assert f'trusted_keys = ["{public}"]' in keygen.stdout
    unsigned = _wrctl("bundle", "verify", str(node), "--trusted-key", public, cwd=tmp_path)
    assert unsigned.returncode == 1 and "unsigned bundle" in unsigned.stderr
    signed = _wrctl(
        "bundle", "cluster.toml", "-o", "signed", "--sign", "keys/deploy.pem", cwd=tmp_path
    )
    assert signed.returncode == 0, signed.stderr
    trusted = _wrctl(
        "bundle", "verify", "signed/bt-node-a.tar.gz", "--trusted-key", public, cwd=tmp_path
    )
    assert trusted.returncode == 0 and "signature is trusted" in trusted.stdout, trusted.stderr
    unknown = _wrctl("bundle", "cluster.toml", "--node", "zz", cwd=tmp_path)
    assert unknown.returncode == 1
    assert "--node 'zz': no such node in cluster.toml (nodes: a)" in unknown.stderr
    assert cluster.file.exists()

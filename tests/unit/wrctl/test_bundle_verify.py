"""The host-side verifier: its pure-Python ed25519 against `cryptography`, and the first
problem named for a tampered, incomplete, padded or malformed bundle."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wrctl.bundle.build import verifier_script
from wrctl.bundle.hostverify import BundleInvalid, ed25519_verify, verify_bundle
from wrctl.bundle.manifest import make_manifest
from wrctl.bundle.signing import (
    generate_key,
    load_private_key,
    public_key_b64,
    sign_manifest,
)
from wrctl.bundle.tarball import build_tarball
from wrctl.errors import WrctlError


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return base64.b64decode(public_key_b64(key))


def test_ed25519_agrees_with_cryptography() -> None:
    for size in (0, 1, 64, 1000):
        key = Ed25519PrivateKey.generate()
        message = os.urandom(size)
        signature = key.sign(message)
        public = _raw_public(key)
        assert ed25519_verify(public, message, signature)
        assert not ed25519_verify(public, message + b"x", signature)
        flipped = bytes([signature[0] ^ 1]) + signature[1:]
        assert not ed25519_verify(public, message, flipped)
        other = _raw_public(Ed25519PrivateKey.generate())
        assert not ed25519_verify(other, message, signature)
    assert not ed25519_verify(b"\0" * 31, b"", b"\0" * 64)  # malformed sizes are refusals


def _files() -> dict[str, bytes]:
    files = {"install.sh": b"#!/bin/sh\n", "config/a.toml": b"a = 1\n"}
    files["manifest.json"] = make_manifest(
        kind="manager",
        cluster="c",
        target="manager",
        node=None,
        runtime_version="0.1.0",
        platform={"tag": "none", "python": "any"},
        modules=[],
        programs=["wr-manager"],
        host_secrets=[],
        files=files,
    )
    return files


def _tar(tmp_path: Path, files: dict[str, bytes]) -> Path:
    path = tmp_path / "b.tar.gz"
    build_tarball(files, path)
    return path


def test_an_intact_bundle_verifies_as_tarball_and_as_dir(tmp_path: Path) -> None:
    files = _files()
    assert verify_bundle(_tar(tmp_path, files))["kind"] == "manager"
    release = tmp_path / "release"
    for name, data in files.items():
        (release / name).parent.mkdir(parents=True, exist_ok=True)
        (release / name).write_bytes(data)
    (release / "venv" / "bin").mkdir(parents=True)  # what install.sh adds is not a problem
    (release / "etc").mkdir()
    (release / "etc" / "a.toml").write_text("a = 1\n")
    assert verify_bundle(release)["target"] == "manager"


def _changed(files: dict[str, bytes], **edits: bytes | None) -> dict[str, bytes]:
    out = dict(files)
    for name, data in edits.items():
        name = name.replace("__", "/").replace("_dot_", ".")
        if data is None:
            del out[name]
        else:
            out[name] = data
    return out


@pytest.mark.parametrize(
    ("edits", "problem"),
    [
        ({"config__a_dot_toml": b"a = 2\n"}, "tampered file config/a.toml"),
        ({"config__a_dot_toml": None}, "missing file config/a.toml (listed in the manifest)"),
        ({"extra_dot_sh": b"rm -rf /\n"}, "unknown file extra.sh (not listed in the manifest)"),
        ({"manifest_dot_json": None}, "manifest.json is missing"),
        ({"manifest_dot_json": b"{not json"}, "manifest.json is not valid JSON"),
        (
            {"manifest_dot_json": json.dumps({"format_version": 2}).encode()},
            "manifest schema: format_version is 2, expected 1",
        ),
    ],
    ids=["tampered", "missing", "unknown", "no-manifest", "bad-json", "schema"],
)
def test_the_first_problem_is_named(
    tmp_path: Path, edits: dict[str, bytes | None], problem: str
) -> None:
    path = _tar(tmp_path, _changed(_files(), **edits))
    with pytest.raises(BundleInvalid) as info:
        verify_bundle(path)
    assert str(info.value).startswith(problem)


def test_schema_problems_name_the_field(tmp_path: Path) -> None:
    manifest = json.loads(_files()["manifest.json"])
    manifest["files"][0]["path"] = "../../etc/passwd"
    files = {"manifest.json": json.dumps(manifest).encode()}
    with pytest.raises(BundleInvalid, match=r"files\[0\].path is unsafe: ../../etc/passwd"):
        verify_bundle(_tar(tmp_path, files))


def test_signatures_are_required_when_keys_are_trusted(tmp_path: Path) -> None:
    ours = Ed25519PrivateKey.generate()
    trusted = [public_key_b64(ours)]
    files = _files()
    with pytest.raises(BundleInvalid, match=r"unsigned bundle: manifest\.sig is missing"):
        verify_bundle(_tar(tmp_path, files), trusted)
    files["manifest.sig"] = sign_manifest(ours, files["manifest.json"])
    assert verify_bundle(_tar(tmp_path, files), trusted)
    files["manifest.sig"] = b"!!not base64"
    with pytest.raises(BundleInvalid, match=r"manifest\.sig is not base64"):
        verify_bundle(_tar(tmp_path, files), trusted)


def test_the_shipped_script_runs_standalone_and_exits_non_zero(tmp_path: Path) -> None:
    script = tmp_path / "wr-verify-bundle"
    script.write_bytes(verifier_script())
    good = _tar(tmp_path, _files())
    env = {"PATH": os.environ["PATH"]}  # -I: no site-packages, so no wrctl to lean on
    ok = subprocess.run(
        [sys.executable, "-I", str(script), str(good)], capture_output=True, text=True, env=env
    )
    assert ok.returncode == 0 and ok.stdout.startswith("ok: manager manager"), ok.stderr
    bad = _tar(tmp_path, _changed(_files(), install_dot_sh=b"#!/bin/sh\nevil\n"))
    refused = subprocess.run(
        [sys.executable, "-I", str(script), str(bad)], capture_output=True, text=True, env=env
    )
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        f"wr-verify-bundle: {bad}: tampered file install.sh: its sha256/size differ from the "
        "manifest"
    )


def test_keygen_writes_a_private_key_and_its_public_half(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "deploy.pem"
    public = generate_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys" / "deploy.pem.pub").read_text().strip() == public
    assert public_key_b64(load_private_key(path)) == public
    with pytest.raises(WrctlError, match="already exists"):
        generate_key(path)
    (tmp_path / "rsa.pem").write_text(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(WrctlError, match=r"--sign: .*rsa.pem: not an unencrypted PEM private key"):
        load_private_key(tmp_path / "rsa.pem")

"""Bundles: byte-identical rebuilds, a manifest that hashes every file, no secret values."""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import os
import platform
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.wire import COMPONENT_HEADER
from wrctl.bundle.build import BundleOptions, build_bundles, split_state_password
from wrctl.bundle.hostverify import verify_bundle
from wrctl.bundle.signing import public_key_b64
from wrctl.bundle.tarball import build_tarball, read_tarball
from wrctl.bundle.wheels import Target
from wrctl.bundle.wheelset import WheelSet
from wrctl.config import load_targets

CLUSTER = """\
[cluster]
name = "shop"

[defaults]
format = "supervisor"

[[node]]
name = "node-a"
host = "local"
engines = 2

[[module]]
namespace = "example"
name = "echo"
version = "1.0.0"
component = "echo.wasm"
schema = "echo.proto"
replicas = 2
env = { GREETING = "hi", API_KEY = { secret = "api-key" } }
"""
PROTO = """\
syntax = "proto3";
package echo;
service EchoService { rpc Echo (EchoRequest) returns (EchoResponse); }
message EchoRequest { string message = 1; }
message EchoResponse { string message = 1; }
"""


def _cluster(tmp_path: Path) -> Path:
    (tmp_path / "echo.wasm").write_bytes(COMPONENT_HEADER + b"echo")
    (tmp_path / "echo.proto").write_text(PROTO)
    (tmp_path / "cluster.toml").write_text(CLUSTER)
    return tmp_path / "cluster.toml"


def test_tarball_is_deterministic_and_normalised() -> None:
    a, da = build_tarball({"b/x.txt": b"1", "install.sh": b"#!/bin/sh\n"})
    b, db = build_tarball({"install.sh": b"#!/bin/sh\n", "b/x.txt": b"1"})
    assert a == b and da == db
    with tarfile.open(fileobj=io.BytesIO(a), mode="r:gz") as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["b", "b/x.txt", "install.sh"]
    assert {(m.mtime, m.uid, m.gid, m.uname) for m in members} == {(0, 0, 0, "root")}
    assert members[2].mode == 0o755 and members[1].mode == 0o644
    assert a[4:8] == b"\0\0\0\0"  # gzip header mtime


def test_duplicates_are_links_and_wheels_a_gzip_member_of_their_own(tmp_path: Path) -> None:
    big = os.urandom(10_000)
    files = {
        "modules/a.wasm": big,
        "modules/b.wasm": big,
        "small/x": b"same",
        "small/y": b"same",
        "wheels/dep-1.0-py3-none-any.whl": os.urandom(5000),
        "wheels/wruntime-0.1.0-py3-none-any.whl": b"own",
    }
    cache = tmp_path / "packed"
    data, _ = build_tarball(files, tmp_path / "a.tar.gz", cache)
    assert len(data) < 2 * len(big)  # the second module costs a header, not its bytes
    assert len(list(cache.glob("*.gz"))) == 1
    with tarfile.open(tmp_path / "a.tar.gz", mode="r:gz") as tar:
        kinds = {m.name: (m.type, m.linkname) for m in tar.getmembers()}
    assert kinds["modules/b.wasm"] == (tarfile.LNKTYPE, "modules/a.wasm")
    assert kinds["small/y"] == (tarfile.REGTYPE, "")
    assert read_tarball(tmp_path / "a.tar.gz") == files
    unpacked = tmp_path / "x"
    unpacked.mkdir()
    subprocess.run(["tar", "-xzf", str(tmp_path / "a.tar.gz"), "-C", str(unpacked)], check=True)
    assert (unpacked / "modules/b.wasm").read_bytes() == big
    assert (
        list(unpacked.glob("wheels/*"))
        and (unpacked / "wheels/wruntime-0.1.0-py3-none-any.whl").read_bytes() == b"own"
    )
    again, _ = build_tarball(files, None, cache)  # the cached member gives the same archive
    assert again == data


def test_two_builds_give_identical_bundles(tmp_path: Path) -> None:
    config = load_targets(_cluster(tmp_path))
    first = build_bundles(config, tmp_path / "one", "0.1.0")
    second = build_bundles(config, tmp_path / "two", "0.1.0")
    assert [b.digest for b in first] == [b.digest for b in second]
    assert [b.path.read_bytes() for b in first] == [b.path.read_bytes() for b in second]
    assert [b.target for b in first] == ["manager", "node-node-a"]


def test_the_manager_bundle_carries_its_migrations(tmp_path: Path) -> None:
    config = load_targets(_cluster(tmp_path))
    manager = build_bundles(config, tmp_path / "out", "0.1.0")[0]
    files = read_tarball(manager.path)
    for dialect in ("sqlite", "postgres"):
        assert b"CREATE TABLE releases" in files[f"migrations/{dialect}/0001_init.sql"]
        assert f"migrations/{dialect}/0003_release_history.sql" in files


def test_node_bundle_contents_and_manifest(tmp_path: Path) -> None:
    config = load_targets(_cluster(tmp_path))
    node = build_bundles(config, tmp_path / "out", "0.1.0")[1]
    files = read_tarball(node.path)
    manifest = json.loads(files["manifest.json"])
    assert manifest["kind"] == "node" and manifest["node"] == "node-a"
    assert manifest["runtime_version"] == "0.1.0"
    listed = {f["path"]: f for f in manifest["files"]}
    assert set(listed) == set(files) - {"manifest.json"}
    for name, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(files[name]).hexdigest()
        assert entry["size"] == len(files[name])
    wasm_digest = hashlib.sha256(COMPONENT_HEADER + b"echo").hexdigest()
    assert manifest["modules"] == [
        {
            "key": "example.echo@1.0.0",
            "namespace": "example",
            "name": "echo",
            "version": "1.0.0",
            "sha256": wasm_digest,
        }
    ]
    assert manifest["programs"] == ["wr-node-a-proxy", "wr-node-a-engine-0", "wr-node-a-engine-1"]
    # no wheels asked for: the host runs an installed runtime like the one that built this
    assert manifest["platform"] == {
        "tag": "none",
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "machine": platform.machine(),
    }
    assert node.module_digests == {"example.echo@1.0.0": f"sha256:{wasm_digest}"}
    assert {"config/proxy.toml", "config/engine-0.toml", "config/engine-1.toml"} <= set(files)
    assert "schemas/example.echo.binpb" in files and "install.sh" in files
    assert {
        "bin/wr-verify-bundle",
        "docker/Dockerfile",
        "docker/compose.yaml",
        "systemd/wr-node-node-a.target",
        "systemd/wr-node-a-proxy.service",
        "systemd/wr-node-a-engine-1.service",
        "supervisor/programs.conf",
        "supervisor/supervisord.conf",
    } <= set(files)
    assert not any(name.startswith("wheels/") for name in files)


def test_wheels_are_shipped_and_the_platform_recorded(tmp_path: Path) -> None:
    config = load_targets(_cluster(tmp_path))
    wheel = tmp_path / "demo-1.0-py3-none-any.whl"
    wheel.write_bytes(b"not really a zip")
    wheels = WheelSet(Target("manylinux_2_28_aarch64", "3.12"), [wheel])
    options = BundleOptions(wheels=wheels)
    for bundle in build_bundles(config, tmp_path / "out", "0.1.0", options=options):
        files = read_tarball(bundle.path)
        manifest = json.loads(files["manifest.json"])
        assert files["wheels/demo-1.0-py3-none-any.whl"] == b"not really a zip"
        assert manifest["platform"] == {
            "tag": "manylinux_2_28_aarch64",
            "python": "3.12",
            "machine": "aarch64",
        }
        assert "Python 3.12" in files["docker/Dockerfile"].decode()


def test_the_progress_names_every_step(tmp_path: Path) -> None:
    config = load_targets(_cluster(tmp_path))
    seen: dict[str, tuple[int, int]] = {}
    options = BundleOptions(report=lambda step, done, total: seen.__setitem__(step, (done, total)))
    build_bundles(config, tmp_path / "out", "0.1.0", options=options)
    assert seen == {
        "bundles": (2, 2),
        "schemas": (1, 1),
        "modules of node node-a": (1, 1),
        "packing manager": (1, 1),
        "packing node-node-a": (1, 1),
    }


def test_a_state_password_never_lands_in_a_bundle(tmp_path: Path) -> None:
    text = CLUSTER.replace(
        "[defaults]",
        '[manager]\nstate = "postgresql://wr:pa:ss%40w0rd@db.internal:5432/wr"\n\n[defaults]',
    )
    (tmp_path / "echo.wasm").write_bytes(COMPONENT_HEADER + b"echo")
    (tmp_path / "echo.proto").write_text(PROTO)
    (tmp_path / "cluster.toml").write_text(text)
    manager = build_bundles(load_targets(tmp_path / "cluster.toml"), tmp_path / "out", "0.1.0")[0]
    raw = gzip.decompress(manager.path.read_bytes())
    assert b"pa:ss" not in raw and b"w0rd" not in raw
    files = read_tarball(manager.path)
    assert 'state = "postgresql://wr@db.internal:5432/wr"' in files["config/manager.toml"].decode()
    manifest = json.loads(files["manifest.json"])
    assert manifest["host_secrets"] == [
        {
            "env": "WR_STATE_PASSWORD",
            "file": "manager/data/pgpass",
            "what": "the password of [manager] state's PostgreSQL DSN",
        }
    ]
    unit = files["systemd/wr-manager.service"].decode()
    assert "Environment=PGPASSFILE=@WORKDIR@/manager/data/pgpass" in unit


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("sqlite", ("sqlite", None)),
        ("postgres://wr@h/db", ("postgres://wr@h/db", None)),
        (
            "postgres://wr:p%3Aw@h:5432/db?sslmode=require",
            ("postgres://wr@h:5432/db?sslmode=require", "p:w"),
        ),
        ("postgresql://:secret@h/db", ("postgresql://@h/db", "secret")),
    ],
)
def test_split_state_password(state: str, expected: tuple[str, str | None]) -> None:
    assert split_state_password(state) == expected


def test_signed_bundles_carry_a_signature_of_the_manifest(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    config = load_targets(_cluster(tmp_path))
    options = BundleOptions(signing_key=key)
    first = build_bundles(config, tmp_path / "one", "0.1.0", options=options)
    again = build_bundles(config, tmp_path / "two", "0.1.0", options=options)
    assert [b.digest for b in first] == [b.digest for b in again]  # ed25519 is deterministic
    for bundle in first:
        files = read_tarball(bundle.path)
        signature = base64.b64decode(files["manifest.sig"])
        key.public_key().verify(signature, files["manifest.json"])
        assert verify_bundle(bundle.path, [public_key_b64(key)])["target"] == bundle.target


def test_no_secret_values_and_placeholders_listed(tmp_path: Path) -> None:
    config = load_targets(_cluster(tmp_path))
    for bundle in build_bundles(config, tmp_path / "out", "0.1.0"):
        files = read_tarball(bundle.path)
        engine = files.get("config/engine-0.toml", b"").decode()
        if engine:
            assert 'API_KEY = { secret = "api-key" }' in engine
            assert 'GREETING = "hi"' in engine
        manifest = json.loads(files["manifest.json"])
        assert "@WORKDIR@" in manifest["placeholders"]
        assert not any(name.startswith(("secrets", "data/")) for name in files)


def test_rendered_service_configs_load_in_the_services(tmp_path: Path) -> None:
    """The templates and the services' config models must agree (no drift)."""
    from runtime.engine.config import load_engine_config
    from runtime.manager.config import load_manager_config
    from runtime.proxy.config import load_proxy_config

    text = CLUSTER.replace(
        "engines = 2", 'engines = 2\n[proxy]\negress_allowlist = ["api.example.com"]'
    )
    text = text.replace("[[module]]", "[[module]]\ncapabilities = []", 1)
    (tmp_path / "echo.wasm").write_bytes(COMPONENT_HEADER + b"echo")
    (tmp_path / "echo.proto").write_text(PROTO)
    (tmp_path / "cluster.toml").write_text(text)
    config = load_targets(tmp_path / "cluster.toml")
    loaded = []
    for bundle in build_bundles(config, tmp_path / "out", "0.1.0"):
        for name, data in read_tarball(bundle.path).items():
            if not name.startswith("config/"):
                continue
            resolved = (
                data.decode()
                .replace("@WORKDIR@", str(tmp_path / "wr"))
                .replace("@RELEASE@", str(tmp_path / "rel"))
                .replace("@TARGET@", bundle.target)
            )
            assert not re.search(r"@[A-Z_]+@", resolved), name
            path = tmp_path / name.replace("/", "-")
            path.write_text(resolved)
            loader = {
                "manager": load_manager_config,
                "proxy": load_proxy_config,
                "engine": load_engine_config,
            }[Path(name).stem.split("-")[0]]
            loaded.append(loader(path))
    assert len(loaded) == 4  # manager, proxy, two engines
    engine0 = loaded[2]
    assert [m.name for m in engine0.module] == ["echo"]  # type: ignore[attr-defined]

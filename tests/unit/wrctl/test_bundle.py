"""Bundles: byte-identical rebuilds, a manifest that hashes every file, no secret values."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from pathlib import Path

from wrctl.bundle.build import build_bundles
from wrctl.bundle.tarball import build_tarball, read_tarball
from wrctl.config import load_cluster

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
    (tmp_path / "echo.wasm").write_bytes(b"\0asm-echo")
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


def test_two_builds_give_identical_bundles(tmp_path: Path) -> None:
    config = load_cluster(_cluster(tmp_path))
    first = build_bundles(config, tmp_path / "one", "0.1.0")
    second = build_bundles(config, tmp_path / "two", "0.1.0")
    assert [b.digest for b in first] == [b.digest for b in second]
    assert [b.path.read_bytes() for b in first] == [b.path.read_bytes() for b in second]
    assert [b.target for b in first] == ["manager", "node-node-a"]


def test_node_bundle_contents_and_manifest(tmp_path: Path) -> None:
    config = load_cluster(_cluster(tmp_path))
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
    wasm_digest = hashlib.sha256(b"\0asm-echo").hexdigest()
    assert manifest["modules"] == [{"key": "example.echo@1.0.0", "sha256": wasm_digest}]
    assert node.module_digests == {"example.echo@1.0.0": f"sha256:{wasm_digest}"}
    assert {"config/proxy.toml", "config/engine-0.toml", "config/engine-1.toml"} <= set(files)
    assert "schemas/example.echo.binpb" in files and "install.sh" in files


def test_no_secret_values_and_placeholders_listed(tmp_path: Path) -> None:
    config = load_cluster(_cluster(tmp_path))
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
    (tmp_path / "echo.wasm").write_bytes(b"\0asm-echo")
    (tmp_path / "echo.proto").write_text(PROTO)
    (tmp_path / "cluster.toml").write_text(text)
    config = load_cluster(tmp_path / "cluster.toml")
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

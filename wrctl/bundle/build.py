"""Build the bundles of a cluster: one per node (proxy, engines, that node's modules) and one
for the manager, as reproducible tarballs with a manifest."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from runtime.names import module_key
from wrctl.bundle.schemas import compile_schema
from wrctl.bundle.tarball import build_tarball
from wrctl.config.model import ClusterConfig, ModuleSection, NodeSection
from wrctl.plan.desired import module_nodes
from wrctl.templates import render

MANIFEST_VERSION = 1
PLACEHOLDERS = ["@WORKDIR@", "@RELEASE@", "@CURRENT@", "@BIN@", "@TARGET@"]


@dataclass(frozen=True)
class Bundle:
    target: str  # "manager" or "node-NAME"
    kind: str  # "manager" | "node"
    path: Path
    digest: str  # "sha256:<hex>" of the tarball
    module_digests: dict[str, str]


def target_name(node: str) -> str:
    return f"node-{node}"


def manager_address_for_nodes(config: ClusterConfig) -> str:
    host = "127.0.0.1" if config.manager.host == "local" else config.manager.host
    return f"{host}:{config.manager.port}"


def build_bundles(
    config: ClusterConfig, out_dir: Path, runtime_version: str, nodes: list[str] | None = None
) -> list[Bundle]:
    """Write the manager bundle and one bundle per node (or the named nodes) into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    schemas = _compiled_schemas(config)
    bundles = [_manager_bundle(config, out_dir, runtime_version)]
    for node in config.node:
        if nodes is None or node.name in nodes:
            bundles.append(_node_bundle(config, node, out_dir, runtime_version, schemas))
    return bundles


def _compiled_schemas(config: ClusterConfig) -> dict[str, bytes]:
    base = config.source.parent
    return {
        f"{m.namespace}.{m.name}": compile_schema(base / m.schema_)
        for m in config.module
        if m.schema_
    }


def _manager_bundle(config: ClusterConfig, out_dir: Path, runtime_version: str) -> Bundle:
    m = config.manager
    bind = "127.0.0.1" if m.host == "local" else "0.0.0.0"
    files = {
        "config/manager.toml": render(
            "manager.toml.j2",
            cluster=config.cluster.name,
            listen_address=f"{bind}:{m.port}",
            admin_address=f"127.0.0.1:{m.admin_port}",
            state=m.state,
            heartbeat_timeout_secs=m.heartbeat_timeout_secs,
        ).encode(),
    }
    key_file = "@WORKDIR@/manager/data/secrets.key"
    programs = [
        {
            "name": "wr-manager",
            "command": (
                f"sh -c 'WR_SECRETS_KEY=$(cat {key_file}) "
                "exec @BIN@/wr-manager --config @CURRENT@/etc/manager.toml'"
            ),
            "priority": "50",
        }
    ]
    return _finish(config, "manager", "manager", files, programs, {}, out_dir, runtime_version)


def _node_bundle(
    config: ClusterConfig,
    node: NodeSection,
    out_dir: Path,
    runtime_version: str,
    schemas: dict[str, bytes],
) -> Bundle:
    base = config.source.parent
    modules = [m for m in config.module if node.name in module_nodes(config, m)]
    advertise = "127.0.0.1" if node.host == "local" else node.host
    files: dict[str, bytes] = {
        "config/proxy.toml": render(
            "proxy.toml.j2",
            cluster=config.cluster.name,
            node=node,
            proxy=config.proxy,
            manager_address=manager_address_for_nodes(config),
            advertise_host=advertise,
            peer_listen_host="127.0.0.1" if node.host == "local" else "0.0.0.0",
        ).encode(),
    }
    programs = [
        {
            "name": f"wr-{node.name}-proxy",
            "command": "@BIN@/wr-proxy --config @CURRENT@/etc/proxy.toml",
            "priority": "100",
        }
    ]
    for index in range(node.engines):
        placed = _engine_modules(modules, index)
        files[f"config/engine-{index}.toml"] = render(
            "engine.toml.j2", cluster=config.cluster.name, node=node, index=index, modules=placed
        ).encode()
        programs.append(
            {
                "name": f"wr-{node.name}-engine-{index}",
                "command": f"@BIN@/wr-engine --config @CURRENT@/etc/engine-{index}.toml",
                # engines stop before the proxy (reverse priority), so they can deregister
                "priority": "200",
            }
        )
    digests: dict[str, str] = {}
    for mod in modules:
        wasm = (base / mod.component).read_bytes()
        files[f"modules/{mod.namespace}.{mod.name}.wasm"] = wasm
        digests[module_key(mod.namespace, mod.name, mod.version)] = (
            f"sha256:{hashlib.sha256(wasm).hexdigest()}"
        )
        schema = schemas.get(f"{mod.namespace}.{mod.name}")
        if schema is not None:
            files[f"schemas/{mod.namespace}.{mod.name}.binpb"] = schema
    target = target_name(node.name)
    return _finish(
        config, target, "node", files, programs, digests, out_dir, runtime_version, node.name
    )


def _engine_modules(modules: list[ModuleSection], index: int) -> list[ModuleSection]:
    """Engine i carries every module with more than i replicas."""
    return [m for m in modules if m.replicas > index]


def _finish(
    config: ClusterConfig,
    target: str,
    kind: str,
    files: dict[str, bytes],
    programs: list[dict[str, str]],
    module_digests: dict[str, str],
    out_dir: Path,
    runtime_version: str,
    node: str | None = None,
) -> Bundle:
    cluster = config.cluster.name
    files["supervisor/programs.conf"] = render(
        "supervisor-program.conf.j2", target=target, cluster=cluster, programs=programs
    ).encode()
    files["supervisor/supervisord.conf"] = render("supervisord.conf.j2").encode()
    files["install.sh"] = render("install.sh.j2", kind=kind, cluster=cluster).encode()
    manifest = {
        "format_version": MANIFEST_VERSION,
        "kind": kind,
        "cluster": cluster,
        "target": target,
        "node": node,
        "runtime_version": runtime_version,
        "platform": {
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "machine": platform.machine(),
        },
        "modules": [
            {"key": key, "sha256": digest.removeprefix("sha256:")}
            for key, digest in sorted(module_digests.items())
        ],
        "placeholders": PLACEHOLDERS,
        "files": [
            {"path": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            for name, data in sorted(files.items())
        ],
    }
    files["manifest.json"] = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()
    path = out_dir / f"{cluster}-{target}.tar.gz"
    _, digest = build_tarball(files, path)
    return Bundle(target, kind, path, f"sha256:{digest}", module_digests)

"""Desired state: cluster.toml resolved to flat attributes and content digests [pure but for
reading the component and schema files it names]."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from wrctl.config.model import (
    ClusterConfig,
    HostSettings,
    ModuleSection,
    NodeSection,
    SecretRef,
)
from wrctl.plan.state import ClusterState, Resource

NODE_REPLACE_ON = frozenset({"host", "format", "runtime_version", "workdir"})
MODULE_REPLACE_ON = frozenset({"version", "component"})
MANAGER_REPLACE_ON = frozenset({"host", "format", "runtime_version", "workdir"})


def file_digest(path: Path) -> str:
    """`sha256:<hex>` of a file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def text_digest(value: object) -> str:
    """Digest of a JSON-able value in canonical form (sorted keys, no spaces)."""
    raw = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


def resolve(config: ClusterConfig, runtime_version: str) -> ClusterState:
    """Every resource cluster.toml asks for, keyed by address."""
    base = config.source.parent
    resources = [_manager(config, runtime_version)]
    resources += [_node(config, node, runtime_version) for node in config.node]
    resources += [_module(config, mod, base) for mod in config.module]
    return ClusterState(resources={r.address: r for r in resources})


def setting(config: ClusterConfig, host: HostSettings, name: str) -> str:
    """A host setting from the [manager]/[[node]] table, else from [defaults]."""
    value = getattr(host, name)
    if value is None:
        value = getattr(config.defaults, name)
    return "" if value is None else str(value)


def _host_attrs(config: ClusterConfig, host: HostSettings, address: str) -> dict[str, str]:
    attrs = {"host": address}
    for name in ("format", "user", "workdir", "ssh_port", "python"):
        attrs[name] = setting(config, host, name)
    if address == "local":  # a local workdir may be relative to cluster.toml
        attrs["workdir"] = str(
            (config.source.parent / Path(attrs["workdir"]).expanduser()).resolve()
        )
    if address == "local":
        del attrs["user"], attrs["ssh_port"]
    return attrs


def _manager(config: ClusterConfig, runtime_version: str) -> Resource:
    m = config.manager
    attrs = _host_attrs(config, m, m.host)
    attrs |= {
        "runtime_version": runtime_version,
        "port": str(m.port),
        "admin_port": str(m.admin_port),
        "state": _mask_url(m.state),
        "state_digest": text_digest(m.state),
        "heartbeat_timeout_secs": str(m.heartbeat_timeout_secs),
    }
    return Resource("manager", "manager", attrs, MANAGER_REPLACE_ON, ("manager",))


def _node(config: ClusterConfig, node: NodeSection, runtime_version: str) -> Resource:
    proxy = config.proxy
    attrs = _host_attrs(config, node, node.host)
    attrs |= {
        "runtime_version": runtime_version,
        "engines": str(node.engines),
        "ports": (
            f"data={node.data_port} control={node.control_port} admin={node.admin_port} "
            f"peer={node.peer_port} engine={node.engine_port}"
        ),
        "proxy.egress_allowlist": json.dumps(sorted(proxy.egress_allowlist)),
        "proxy.request_timeout_secs": str(proxy.request_timeout_secs),
        "proxy.circuit_breaker": (
            f"{proxy.circuit_breaker.failure_threshold} failures, "
            f"open {proxy.circuit_breaker.open_duration_secs}s"
        ),
        "proxy.external": text_digest([proxy.external_port, [r.model_dump() for r in proxy.route]]),
        "manager": f"{config.manager.host}:{config.manager.port}",
    }
    if setting(config, node, "format") == "docker":
        attrs["docker_base_image"] = setting(config, node, "docker_base_image")
    return Resource(f"node.{node.name}", "node", attrs, NODE_REPLACE_ON, (node.name,))


def module_nodes(config: ClusterConfig, mod: ModuleSection) -> list[str]:
    """The nodes a module is placed on: its `nodes` list, or every node."""
    return list(mod.nodes) if mod.nodes is not None else [n.name for n in config.node]


def _module(config: ClusterConfig, mod: ModuleSection, base: Path) -> Resource:
    nodes = module_nodes(config, mod)
    attrs = {
        "version": mod.version,
        "component": file_digest(base / mod.component),
        "schema": file_digest(base / mod.schema_) if mod.schema_ else "",
        "nodes": json.dumps(nodes),
        "replicas": str(mod.replicas),
        "request_timeout_secs": str(mod.request_timeout_secs),
        "memory_limit_mb": str(mod.memory_limit_mb),
        "capabilities": json.dumps(sorted(mod.capabilities)),
    }
    for key, value in sorted(mod.env.items()):
        attrs[f"env.{key}"] = f"(secret {value.secret})" if isinstance(value, SecretRef) else value
    return Resource(
        f"module.{mod.namespace}.{mod.name}", "module", attrs, MODULE_REPLACE_ON, tuple(nodes)
    )


def _mask_url(url: str) -> str:
    """Hide a password in a database URL; plan output and saved plans never carry it."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))

"""Desired state: the resolved targets as flat attributes and content digests [pure but for
reading the component and schema files it names]."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from wrctl.config.model import ClusterConfig, ModuleSection, SecretRef
from wrctl.config.targets import HostTarget, NodeTarget, Targets, module_nodes
from wrctl.plan import database, managers, schedules
from wrctl.plan.managers import MANAGER
from wrctl.plan.state import ClusterState, Resource

if TYPE_CHECKING:
    from wrctl.pki import ClusterCA

NODE_REPLACE_ON = frozenset({"host", "format", "runtime_version", "workdir"})
MODULE_REPLACE_ON = frozenset({"version", "component"})
MANAGER_REPLACE_ON = frozenset({"host", "format", "runtime_version", "workdir"})
TLS_ATTRIBUTE = "tls"  # a node's certificate fingerprint
RENEWED = "(new certificate at apply)"


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


def resolve(targets: Targets, runtime_version: str) -> ClusterState:
    """Every resource cluster.toml asks for, keyed by address."""
    config = targets.config
    base = config.source.parent
    resources = _managers(targets, runtime_version)
    resources += [_node(targets, node, runtime_version) for node in targets.nodes]
    resources += [_module(config, mod, base) for mod in config.module]
    resources += database.desired_resources(config)
    resources += [schedules.desired(schedule) for schedule in config.schedule]
    return ClusterState(resources={r.address: r for r in resources})


def _host_attrs(place: HostTarget) -> dict[str, str]:
    attrs = {"host": place.host, "format": place.format, "workdir": place.workdir}
    if not place.is_local:
        attrs |= {"user": place.reach.user, "ssh_port": str(place.reach.ssh_port)}
    attrs["python"] = place.python
    return attrs


def _managers(targets: Targets, runtime_version: str) -> list[Resource]:
    """`manager`, or with several hosts one `manager.<host>` each (see wrctl.plan.managers):
    its own host, the address it advertises and the digest of its manager.toml."""
    common = _manager_attrs(targets, runtime_version)
    if len(targets.manager.places) == 1:
        attrs = _host_attrs(targets.manager.place) | common
        return [Resource(MANAGER, MANAGER, attrs, MANAGER_REPLACE_ON, (MANAGER,))]
    from wrctl.bundle.build import manager_toml

    resources = []
    for place, advertised in zip(
        targets.manager.places, targets.manager.node_endpoints, strict=True
    ):
        address = managers.address_of(place.host)
        attrs = _host_attrs(place) | common
        attrs |= {
            "advertise_address": advertised,
            "config": text_digest(manager_toml(targets, place)),
        }
        resources.append(Resource(address, MANAGER, attrs, MANAGER_REPLACE_ON, (address,)))
    return resources


def _manager_attrs(targets: Targets, runtime_version: str) -> dict[str, str]:
    m = targets.config.manager
    return {
        "cluster": targets.config.cluster.name,  # what its manager.toml says it serves
        "runtime_version": runtime_version,
        "port": str(targets.manager.port),
        "admin_port": str(targets.manager.admin_port),
        "state": _mask_url(m.state),
        "state_digest": text_digest(m.state),
        "heartbeat_timeout_secs": str(m.heartbeat_timeout_secs),
    }


def _node(targets: Targets, node: NodeTarget, runtime_version: str) -> Resource:
    config = targets.config
    proxy = config.proxy
    ports = node.ports
    attrs = _host_attrs(node.place)
    attrs |= {
        "runtime_version": runtime_version,
        "engines": str(node.engines),
        # display only: whoever needs a port reads NodeTarget.ports
        "ports": (
            f"data={ports.data} control={ports.control} admin={ports.admin} "
            f"peer={ports.peer} engine={ports.engine}"
        ),
        "proxy.egress_allowlist": json.dumps(sorted(proxy.egress_allowlist)),
        "proxy.request_timeout_secs": str(proxy.request_timeout_secs),
        "proxy.circuit_breaker": (
            f"{proxy.circuit_breaker.failure_threshold} failures, "
            f"open {proxy.circuit_breaker.open_duration_secs}s"
        ),
        "proxy.external": text_digest([proxy.external_port, [r.model_dump() for r in proxy.route]]),
        "manager": ",".join(f"{host}:{config.manager.port}" for host in config.manager.all_hosts),
    }
    if node.place.format == "docker":
        attrs["docker_base_image"] = node.place.docker_base_image or ""
    tls = node_tls(targets, node)
    if tls:
        attrs[TLS_ATTRIBUTE] = tls
    return Resource(node.place.address, "node", attrs, NODE_REPLACE_ON, (node.name,))


def node_tls(targets: Targets, node: NodeTarget) -> str:
    """The node certificate's fingerprint (a rotation changes it: apply uploads the new files
    and the proxy reloads them, no restart); RENEWED when apply will issue a new one; "" before
    the cluster has certificates (the first apply issues them and records the fingerprint)."""
    from wrctl.pki import pki_dir

    config = targets.config
    directory = pki_dir(config.source, config.cluster.name)
    ca_cert = directory / "ca.crt"
    if not ca_cert.exists() or not (directory / f"node-{node.name}.crt").exists():
        return ""
    ca = _ca(directory, config.cluster.name, ca_cert.stat().st_mtime_ns)
    return ca.node_fingerprint(node.name, node.place.wire_host) or RENEWED


@functools.lru_cache(maxsize=4)
def _ca(directory: Path, cluster: str, _stamp: int) -> ClusterCA:
    """The CA loaded once per plan, not once per node (keyed by ca.crt's mtime too)."""
    from wrctl.pki import ClusterCA

    return ClusterCA(directory, cluster)


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
        "max_body_mb": str(mod.max_body_mb),
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

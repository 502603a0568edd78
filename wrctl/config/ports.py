"""Port rules: every listener a host would run (manager, proxies, engines, public ingress)
gets a port of its own, and an engine range stays within 65535."""

from __future__ import annotations

from dataclasses import dataclass

from wrctl.config.model import ClusterConfig, HostSettings
from wrctl.config.runtime_rules import Loc, Problem

MAX_PORT = 65535


@dataclass(frozen=True)
class _Listener:
    loc: Loc  # where its port is declared (the enclosing table when it is a default)
    label: str  # how a message names it
    port: int


def port_problems(config: ClusterConfig) -> list[Problem]:
    """Two listeners on one host with the same port, and engine ranges past 65535."""
    problems: list[Problem] = []
    taken: dict[tuple[str, int], _Listener] = {}  # (host, port) -> first listener
    for host, listener in _listeners(config):
        first = taken.setdefault((host, listener.port), listener)
        if first is not listener:
            problems.append(
                (
                    listener.loc,
                    f"port {listener.port} is already {first.label} on host {host!r}; "
                    "every listener on a host needs its own port",
                )
            )
    for i, node in enumerate(config.node):
        last = node.engine_port + node.engines - 1
        if last > MAX_PORT:
            problems.append(
                (
                    ("node", i, "engines"),
                    f"{node.engines} engines from engine_port {node.engine_port} need ports up "
                    f"to {last}, past {MAX_PORT}; lower engine_port or engines",
                )
            )
    return problems


def _listeners(config: ClusterConfig) -> list[tuple[str, _Listener]]:
    """(host key, listener) for every port the cluster would bind, manager first."""
    m = config.manager
    host = _host_key(config, m, m.host)
    out = [
        (host, _Listener(("manager", "port"), "manager.port", m.port)),
        (host, _Listener(("manager", "admin_port"), "manager.admin_port", m.admin_port)),
    ]
    external = config.proxy.external_port
    for i, node in enumerate(config.node):
        host = _host_key(config, node, node.host)
        at = ("node", i)
        for key in ("data_port", "control_port", "admin_port", "peer_port"):
            out.append((host, _Listener((*at, key), f"node[{i}].{key}", getattr(node, key))))
        for e in range(node.engines):
            where = (*at, "engine_port") if e == 0 else (*at, "engines")
            label = f"node[{i}]'s engine {e} (engine_port + {e})"
            out.append((host, _Listener(where, label, node.engine_port + e)))
        if external is not None:
            label = f"node[{i}]'s public ingress (proxy.external_port)"
            out.append((host, _Listener(("proxy", "external_port"), label, external)))
    return out


def _host_key(config: ClusterConfig, section: HostSettings, host: str) -> str:
    """Which machine a target runs on: "local", or the host with its SSH port when that is
    not 22 (hosts behind one address on different SSH ports are different machines)."""
    if host == "local":
        return host
    port = section.ssh_port or config.defaults.ssh_port or 22
    return host.lower() if port == 22 else f"{host.lower()}:{port}"

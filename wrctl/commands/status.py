"""`wrctl status`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from runtime.wire import module_key
from wrctl.commands.options import JsonOut, Manager, MaybeCluster, overrides

if TYPE_CHECKING:
    from pathlib import Path

    from runtime.api import wruntime_pb2 as pb
    from wrctl.certs import CertInfo
    from wrctl.config.model import ClusterConfig
    from wrctl.managerapi import ManagerClient


def status(
    cluster: MaybeCluster = None, manager: Manager = None, json_out: JsonOut = False
) -> None:
    """Nodes, engines, modules, versions, health and the applied releases."""
    from google.protobuf import json_format
    from rich.table import Table

    from wrctl.config import load_cluster
    from wrctl.config.targets import manager_endpoints
    from wrctl.console import out, print_json
    from wrctl.credentials import resolve_credentials
    from wrctl.managerapi import ManagerClient

    config = load_cluster(cluster) if cluster is not None else None
    endpoints = manager_endpoints(config, overrides(manager))
    client = ManagerClient(endpoints, resolve_credentials(config))
    try:
        state = client.state()
        managers = manager_health(client, endpoints, manager_resources(config))
    finally:
        client.close()
    certificates = _certificates(config, client.credentials.files.cert_path)
    if json_out:
        data = json_format.MessageToDict(state, preserving_proto_field_name=True)
        print_json(
            data
            | {
                "certificates": [c.to_json() for c in certificates],
                "managers": [m.to_json() for m in managers],
            }
        )
        return
    out.print(
        f"Manager {client.address} (runtime {state.manager_version or '?'}), "
        f"state serial {state.serial}"
    )
    if len(managers) > 1 or not all(m.answers for m in managers):
        _print_managers(managers)
    if state.HasField("lock"):
        out.print(f"[yellow]Apply lock held by {state.lock.holder} ({state.lock.reason})[/yellow]")
    table = Table("node", "release", "applied", "engine", "health", "modules")
    for node in state.nodes:
        release = node.release if node.HasField("release") else None
        applied = (
            f"{release.applied_at.ToDatetime():%Y-%m-%d %H:%M} by {release.applied_by}"
            if release
            else "-"
        )
        digest = release.bundle_digest[7:19] if release else "-"
        engines: list[pb.EngineStatus | None] = [*node.engines] or [None]
        for i, engine in enumerate(engines):
            table.add_row(
                node.name if i == 0 else "",
                digest if i == 0 else "",
                applied if i == 0 else "",
                *_engine_cells(engine),
            )
    out.print(table)
    _print_certificates(certificates)


@dataclass(frozen=True)
class ManagerHealth:
    address: str
    listed: bool | None  # has a live heartbeat row (None: the manager cannot say)
    answers: bool
    detail: str  # round trip, or why it did not answer
    resource: str = ""  # its plan address (`manager`, `manager.HOST`); "" if not declared

    def to_json(self) -> dict[str, object]:
        return {
            "address": self.address,
            "resource": self.resource,
            "listed": self.listed,
            "answers": self.answers,
            "detail": self.detail,
        }


def manager_resources(config: ClusterConfig | None) -> dict[str, str]:
    """host:port (as the managers advertise it in ListManagers) -> the plan's resource
    address of that manager, for cluster.toml's managers."""
    if config is None:
        return {}
    from wrctl.config.targets import resolve_targets
    from wrctl.plan.managers import MANAGER, address_of

    manager = resolve_targets(config).manager
    if len(manager.places) == 1:
        return {manager.node_endpoint: MANAGER}
    hosts = [p.host for p in manager.places]
    return dict(zip(manager.node_endpoints, map(address_of, hosts), strict=True))


def manager_health(
    client: ManagerClient, configured: list[str], resources: dict[str, str] | None = None
) -> list[ManagerHealth]:
    """Each manager (cluster.toml's and those with a live heartbeat row), dialled on its own;
    resources names the plan address of each known host:port."""
    from wrctl.errors import WrctlError
    from wrctl.managerapi import ManagerClient

    try:
        live: set[str] | None = {m.grpc_address for m in client.managers()}
    except WrctlError:  # a manager from before ListManagers
        live = None
    found = []
    for address in [*configured, *sorted((live or set()) - set(configured))]:
        one = ManagerClient(address, client.credentials, timeout=3.0)
        started = time.monotonic()
        try:
            one.routing_version()
            answers, detail = True, f"{(time.monotonic() - started) * 1000:.0f} ms"
        except WrctlError as exc:
            answers, detail = False, str(exc).splitlines()[0]
        finally:
            one.close()
        listed = None if live is None else address in live
        resource = (resources or {}).get(address, "")
        found.append(ManagerHealth(address, listed, answers, detail, resource))
    return found


def _print_managers(managers: list[ManagerHealth]) -> None:
    from rich.table import Table

    from wrctl.console import out

    table = Table("manager", "resource", "heartbeat row", "answers")
    for m in managers:
        listed = "?" if m.listed is None else ("live" if m.listed else "[red]none[/red]")
        answers = f"[green]yes[/green] ({m.detail})" if m.answers else f"[red]no[/red]: {m.detail}"
        table.add_row(m.address, m.resource or "-", listed, answers)
    out.print(table)


def _certificates(config: ClusterConfig | None, operator: Path) -> list[CertInfo]:
    """The CA's, the manager's, the operator's (the one in use) and each node's certificate."""
    from wrctl.certs import certificate_report
    from wrctl.pki import pki_dir

    if config is None:  # as for the credentials: ./cluster.toml's CA when there is one
        from wrctl.config import load_cluster
        from wrctl.credentials import DEFAULT_CLUSTER_FILE
        from wrctl.errors import ConfigError

        try:
            config = load_cluster(DEFAULT_CLUSTER_FILE) if DEFAULT_CLUSTER_FILE.is_file() else None
        except ConfigError:
            config = None
    if config is None:
        return certificate_report(None, [], operator)
    directory = pki_dir(config.source, config.cluster.name)
    return certificate_report(directory, [n.name for n in config.node], operator)


def _print_certificates(certificates: list[CertInfo]) -> None:
    from rich.table import Table

    from wrctl.console import out

    table = Table("certificate", "expires (UTC)", "days left", "identity")
    for c in certificates:
        days = str(c.days_left)
        if c.warning:
            days = f"[red]{days} ({c.warning})[/red]"
        table.add_row(c.label, f"{c.not_after:%Y-%m-%d %H:%M}", days, c.identity or c.subject)
    out.print(table)


def _engine_cells(engine: pb.EngineStatus | None) -> tuple[str, str, str]:
    if engine is None:
        return "-", "[red]no engines[/red]", "-"
    health = "[green]healthy[/green]" if engine.healthy else "[red]unhealthy[/red]"
    modules = ", ".join(
        module_key(m.module.namespace, m.module.name, m.module.version)
        + ("" if m.healthy else " [red](unhealthy)[/red]")
        for m in engine.modules
    )
    return engine.registration.engine_id[:8], health, modules or "-"

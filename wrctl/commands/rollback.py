"""`wrctl rollback` and `wrctl history`."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import json_format
from rich.table import Table
from rich.text import Text

from wrctl.bundle.build import manager_address_for_nodes
from wrctl.config import load_cluster
from wrctl.console import (
    abort,
    confirm,
    out,
    print_failure,
    print_json,
    print_results,
    step_reporter,
)
from wrctl.deploy.apply import ApplyFailed
from wrctl.deploy.hosts import HostAccess
from wrctl.deploy.rollback import rollback_nodes
from wrctl.managerapi import ManagerClient

_STATUS_STYLES = {"applied": "green", "rolled-back": "yellow", "failed": "red"}


def run_rollback(
    cluster: Path,
    nodes: list[str],
    auto_approve: bool,
    health_timeout: float,
    access: HostAccess | None = None,
) -> None:
    config = load_cluster(cluster)
    client = ManagerClient(manager_address_for_nodes(config))
    try:
        recorded = {n.name: n.release for n in client.state().nodes if n.HasField("release")}
    finally:
        client.close()
    for node in nodes or sorted(recorded):
        release = recorded.get(node)
        if release is not None and release.previous_bundle_digest:
            out.print(
                Text(f"  node.{node}: ", style="bold")
                + Text(f"{release.bundle_digest[7:19]} -> {release.previous_bundle_digest[7:19]}")
            )
    if not auto_approve and not confirm("Roll these nodes back?"):
        abort("Rollback cancelled.")
    try:
        results = rollback_nodes(config, nodes or None, step_reporter(), health_timeout, access)
    except ApplyFailed as exc:
        print_failure(exc.results)
        raise
    print_results(results, out)
    out.print(
        "[bold green]Rollback complete.[/bold green] "
        "`wrctl plan` shows what differs from cluster.toml now."
    )


def run_history(cluster: Path, node: str | None, limit: int, json_out: bool) -> None:
    config = load_cluster(cluster)
    client = ManagerClient(manager_address_for_nodes(config))
    try:
        records = client.history(node or "", limit)
    finally:
        client.close()
    if json_out:
        print_json(
            [json_format.MessageToDict(r, preserving_proto_field_name=True) for r in records]
        )
        return
    table = Table("when (UTC)", "target", "status", "bundle", "previous", "by", "message")
    for r in records:
        table.add_row(
            f"{r.applied_at.ToDatetime():%Y-%m-%d %H:%M:%S}",
            r.target,
            Text(r.status, style=_STATUS_STYLES.get(r.status, "")),
            r.bundle_digest[7:19],
            r.previous_bundle_digest[7:19] or "-",
            r.applied_by,
            (r.message.splitlines() or [""])[0][:80],
        )
    out.print(table)

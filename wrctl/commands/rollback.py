"""`wrctl rollback` and `wrctl history`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wrctl.commands.options import (
    AcceptNewHostKey,
    AllowOtherCluster,
    AutoApprove,
    ClusterFile,
    HealthTimeout,
    JsonOut,
    KnownHosts,
    Manager,
    overrides,
)

_STATUS_STYLES = {"applied": "green", "rolled-back": "yellow", "failed": "red"}


def rollback(
    cluster: ClusterFile = Path("cluster.toml"),
    node: Annotated[
        list[str] | None,
        typer.Option("--node", "-n", help="Only this node (repeatable). Default: every node."),
    ] = None,
    auto_approve: AutoApprove = False,
    health_timeout: HealthTimeout = 60.0,
    accept_new_host_key: AcceptNewHostKey = False,
    known_hosts: KnownHosts = None,
    manager: Manager = None,
    allow_other_cluster: AllowOtherCluster = False,
) -> None:
    """Return nodes to the release they ran before the current one."""
    from rich.text import Text

    from wrctl.commands.exits import abort
    from wrctl.config import load_targets
    from wrctl.console import confirm, out, print_failure, print_results, step_reporter
    from wrctl.deploy.rollback import plan_rollback, rollback_nodes
    from wrctl.deploy.session import ApplyFailed, ApplyOptions, open_session

    given = overrides(manager, known_hosts, accept_new_host_key, allow_other_cluster)
    targets = load_targets(cluster, given)
    options = ApplyOptions(health_timeout_s=health_timeout)
    with open_session(targets, step_reporter(), options) as session, session.locked("rollback"):
        steps = plan_rollback(session, node or None)
        for step in steps:
            now, before = step.current.bundle_digest, step.previous.bundle_digest
            out.print(
                Text(f"  node.{step.node.name}: ", style="bold")
                + Text(f"{now[7:19]} -> {before[7:19]}")
            )
        if not auto_approve and not confirm("Roll these nodes back?"):
            abort("Rollback cancelled.")
        try:
            results = rollback_nodes(session, steps)
        except ApplyFailed as exc:
            print_failure(exc.results)
            raise
    print_results(results, out)
    out.print(
        "[bold green]Rollback complete.[/bold green] "
        "`wrctl plan` shows what differs from cluster.toml now."
    )


def history(
    cluster: ClusterFile = Path("cluster.toml"),
    node: Annotated[str | None, typer.Option("--node", "-n", help="Only this node.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many records.")] = 20,
    json_out: JsonOut = False,
    manager: Manager = None,
) -> None:
    """Releases recorded by apply and rollback, newest first, failed attempts included."""
    from google.protobuf import json_format
    from rich.table import Table
    from rich.text import Text

    from wrctl.config import load_targets
    from wrctl.console import out, print_json
    from wrctl.credentials import resolve_credentials
    from wrctl.managerapi import ManagerClient

    targets = load_targets(cluster, overrides(manager))
    client = ManagerClient(targets.manager.endpoints, resolve_credentials(targets.config))
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

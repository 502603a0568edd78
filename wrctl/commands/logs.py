"""`wrctl logs`: a node's (or the manager's) service logs, read on its host."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wrctl.commands.options import AcceptNewHostKey, ClusterOption, KnownHosts, overrides


def logs(
    node: Annotated[
        str, typer.Argument(help="A node name, `manager`, or `manager.HOST` (one of several).")
    ],
    service: Annotated[
        str | None,
        typer.Argument(help="proxy, engine-0, ... (default: every service of the node)."),
    ] = None,
    cluster: ClusterOption = Path("cluster.toml"),
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines of history.")] = 100,
    accept_new_host_key: AcceptNewHostKey = False,
    known_hosts: KnownHosts = None,
) -> None:
    """Print a node's service logs, read on its host (journal, docker or log files)."""
    import sys

    from wrctl.config import load_targets
    from wrctl.deploy.formats import stream_logs
    from wrctl.deploy.hosts import open_host
    from wrctl.errors import WrctlError

    targets = load_targets(cluster, overrides(None, known_hosts, accept_new_host_key))
    managers = ["manager"] + [f"manager.{p.host}" for p in targets.manager.places[1:]]
    if len(targets.manager.places) > 1:  # `manager` is the first one
        managers.insert(1, f"manager.{targets.manager.place.host}")
    if node not in managers and node not in {n.name for n in targets.nodes}:
        names = ", ".join([*managers, *(n.name for n in targets.nodes)])
        raise WrctlError(f"{node!r} is not a node of {cluster} (expected one of: {names})")
    place = targets.target(node if node in managers else f"node.{node}")
    host = open_host(place)

    def sink(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        code = stream_logs(
            host.transport,
            host.format,
            place.name,
            sink,
            service=service,
            follow=follow,
            lines=lines,
        )
    finally:
        host.transport.close()
    if code not in (0, 130):
        raise typer.Exit(code)

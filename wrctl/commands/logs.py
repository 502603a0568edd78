"""`wrctl logs`: a node's (or the manager's) service logs, read on its host."""

from __future__ import annotations

import sys
from pathlib import Path

from runtime.version import __version__
from wrctl.config import load_cluster
from wrctl.deploy.formats import stream_logs
from wrctl.deploy.hosts import HostAccess, open_target
from wrctl.errors import WrctlError
from wrctl.plan.desired import resolve


def run_logs(
    cluster: Path,
    node: str,
    service: str | None,
    follow: bool,
    lines: int,
    access: HostAccess,
) -> int:
    """Stream the logs to stdout; returns the remote command's exit code."""
    config = load_cluster(cluster)
    address = "manager" if node == "manager" else f"node.{node}"
    desired = resolve(config, __version__)
    if address not in desired.resources:
        names = ", ".join(["manager", *(n.name for n in config.node)])
        raise WrctlError(f"{node!r} is not a node of {cluster} (expected one of: {names})")
    host = open_target(config, desired.resources[address].attributes, address, access)
    target = "manager" if node == "manager" else f"node-{node}"

    def sink(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        return stream_logs(
            host.transport, host.format, target, sink, service=service, follow=follow, lines=lines
        )
    finally:
        host.transport.close()

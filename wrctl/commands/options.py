"""Arguments and options several commands share, defined once so every command reads them,
and the overrides they carry (WR_MANAGER, --known-hosts, ...), the same way."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from wrctl.config.targets import Overrides

ClusterFile = Annotated[Path, typer.Argument(help="The cluster description.")]
ClusterOption = Annotated[
    Path, typer.Option("-c", "--cluster", help="The cluster description.", metavar="FILE")
]
MaybeCluster = Annotated[
    Path | None,
    typer.Option("-c", "--cluster", help="Use this cluster.toml's manager.", metavar="FILE"),
]
Manager = Annotated[
    str | None,
    typer.Option(
        "--manager",
        envvar="WR_MANAGER",
        metavar="HOST:PORT",
        help="The manager to talk to, instead of the one cluster.toml names.",
    ),
]
AutoApprove = Annotated[bool, typer.Option("--auto-approve", help="Do not ask.")]
HealthTimeout = Annotated[
    float, typer.Option("--health-timeout", help="Seconds a node has to pass its health gate.")
]
AcceptNewHostKey = Annotated[
    bool,
    typer.Option(
        "--accept-new-host-key",
        help="Trust the key of a host not yet in known_hosts and add it (a changed key is "
        "always refused).",
    ),
]
KnownHosts = Annotated[
    str | None,
    typer.Option("--known-hosts", help="known_hosts file to check hosts against.", metavar="FILE"),
]
AllowOtherCluster = Annotated[
    bool,
    typer.Option(
        "--allow-other-cluster",
        help="Act on the manager even when it serves another cluster than cluster.toml's "
        "(taking that cluster's manager over).",
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def overrides(
    manager: str | None = None,
    known_hosts: str | None = None,
    accept_new_host_key: bool = False,
    allow_other_cluster: bool = False,
) -> Overrides:
    """What the command line (and WR_MANAGER, through --manager) changes about reaching the
    cluster, for `wrctl.config.resolve_targets`."""
    from wrctl.config.targets import Overrides

    return Overrides(manager or None, known_hosts or None, accept_new_host_key, allow_other_cluster)

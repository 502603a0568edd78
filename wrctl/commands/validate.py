"""`wrctl validate`."""

from __future__ import annotations

from pathlib import Path

import typer

from wrctl.commands.options import ClusterFile


def validate(cluster: ClusterFile = Path("cluster.toml")) -> None:
    """Check cluster.toml and the files it names (schemas compiled), without contacting
    anything."""
    from wrctl.config import load_cluster

    config = load_cluster(cluster, compile_schemas=True)
    # typer's styling, not rich's: rich.console alone would add a third to this command's time
    typer.secho(f"{cluster} is valid", fg="green", nl=False)
    typer.echo(
        f": cluster {config.cluster.name}, "
        f"{len(config.node)} node(s), {len(config.module)} module(s)"
    )

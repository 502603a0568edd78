"""`wrctl force-unlock`."""

from __future__ import annotations

from typing import Annotated

import typer

from wrctl.commands.options import Manager, MaybeCluster, overrides


def force_unlock(
    lock_id: Annotated[str, typer.Argument(help="The lock id shown by the failed apply.")],
    manager: Manager = None,
    cluster: MaybeCluster = None,
) -> None:
    """Release an apply lock whose holder died."""
    from wrctl.config import load_cluster
    from wrctl.config.targets import manager_endpoints
    from wrctl.console import out
    from wrctl.credentials import resolve_credentials
    from wrctl.managerapi import ManagerClient

    config = load_cluster(cluster) if cluster is not None else None
    client = ManagerClient(
        manager_endpoints(config, overrides(manager)), resolve_credentials(config)
    )
    try:
        client.force_unlock(lock_id)
    finally:
        client.close()
    out.print(f"Lock {lock_id} released.")

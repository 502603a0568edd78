"""Observe: the live state a plan is made against, asked of the manager [I/O]. Before a
cluster's first apply there is no manager yet, which means "everything is to be created";
after it, an unreachable manager is an error (the `.wrctl/CLUSTER.applied` marker says which)."""

from __future__ import annotations

from pathlib import Path

import grpc

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from wrctl.config import Targets
from wrctl.errors import ManagerUnreachable
from wrctl.fsutil import write_atomic
from wrctl.plan import ClusterState, nothing_yet
from wrctl.plan.live import from_cluster_state


def observe(manager_address: str, timeout: float = 5.0) -> ClusterState:
    """Ask the manager for the live state; ManagerUnreachable when it does not answer."""
    with grpc.insecure_channel(manager_address) as channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        try:
            response = stub.GetClusterState(pb.GetClusterStateRequest(), timeout=timeout)
            listed = stub.ListSecrets(pb.ListSecretsRequest(), timeout=timeout)
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            raise ManagerUnreachable(
                f"manager at {manager_address} did not answer GetClusterState "
                f"({code.name if code else 'error'}: {details})"
            ) from None
    state = from_cluster_state(response)
    secrets = frozenset(f"{e.namespace}/{e.key}" for e in listed.secrets)
    return ClusterState(state.resources, state.engines, state.serial, True, secrets, state.bundles)


def observe_live(targets: Targets, timeout: float = 5.0) -> ClusterState:
    """Live state; an unreachable manager means "nothing yet" only before the first apply."""
    try:
        return observe(targets.manager.endpoint, timeout)
    except ManagerUnreachable as exc:
        marker = _marker(targets)
        if marker.exists():
            raise ManagerUnreachable(
                f"{exc}; this cluster was applied before ({marker}), so its live "
                "state cannot be assumed empty"
            ) from None
        return nothing_yet()


def _marker(targets: Targets) -> Path:
    config = targets.config
    return config.source.parent / ".wrctl" / f"{config.cluster.name}.applied"


def mark_applied(targets: Targets, serial: int) -> None:
    """Remember that this cluster has a manager, so a later unreachable manager is an error."""
    write_atomic(_marker(targets), f"{targets.manager.endpoint} serial={serial}\n".encode())


def forget_applied(targets: Targets) -> None:
    _marker(targets).unlink(missing_ok=True)

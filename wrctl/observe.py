"""Observe: the live state a plan is made against, asked of the manager [I/O]. Before a
cluster's first apply there is no manager yet, which means "everything is to be created";
after it, an unreachable manager is an error (the `.wrctl/CLUSTER.applied` marker says which)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import grpc

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from wrctl.config import Targets
from wrctl.credentials import OperatorCredentials, manager_channel, refusal, resolve_credentials
from wrctl.errors import ManagerUnreachable, OtherClusterError
from wrctl.fsutil import write_atomic
from wrctl.plan import ClusterState, nothing_yet
from wrctl.plan.live import from_cluster_state
from wrctl.plan.schedules import live as schedule_resource


def observe(
    manager_address: str | Sequence[str], credentials: OperatorCredentials, timeout: float = 5.0
) -> ClusterState:
    """Ask the manager for the live state (the first of several that answers: they share
    one store); ManagerUnreachable when none answers, CredentialsError when one refuses who
    we are."""
    addresses = [manager_address] if isinstance(manager_address, str) else list(manager_address)
    away: list[str] = []
    for address in addresses:
        try:
            return _observe_one(address, credentials, timeout)
        except ManagerUnreachable as exc:
            away.append(str(exc))
    raise ManagerUnreachable("; ".join(away))


def _observe_one(
    manager_address: str, credentials: OperatorCredentials, timeout: float
) -> ClusterState:
    with manager_channel(manager_address, credentials) as channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        try:
            response = stub.GetClusterState(pb.GetClusterStateRequest(), timeout=timeout)
            listed = stub.ListSecrets(pb.ListSecretsRequest(), timeout=timeout)
            scheduled = _schedules(stub, timeout)
            up = _managers_up(stub, timeout)
        except grpc.RpcError as exc:
            refused = refusal(exc, manager_address, credentials, "GetClusterState")
            if refused is not None:
                raise refused from None
            code = exc.code() if isinstance(exc, grpc.Call) else None
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            raise ManagerUnreachable(
                f"manager at {manager_address} did not answer GetClusterState "
                f"({code.name if code else 'error'}: {details})"
            ) from None
    secrets = frozenset(f"{e.namespace}/{e.key}" for e in listed.secrets)
    state = from_cluster_state(response)
    resources = {**state.resources, **{r.address: r for r in map(schedule_resource, scheduled)}}
    return replace(state, resources=resources, reachable=True, secrets=secrets, managers_up=up)


def _schedules(stub: pb_grpc.ManagerServiceStub, timeout: float) -> list[pb.Schedule]:
    """The manager's schedules; none from a manager older than schedules (UNIMPLEMENTED)."""
    try:
        answer = stub.ListSchedules(pb.ListSchedulesRequest(), timeout=timeout)
    except grpc.RpcError as exc:
        if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return []
        raise
    return list(answer.schedules)


def _managers_up(stub: pb_grpc.ManagerServiceStub, timeout: float) -> frozenset[str] | None:
    """host:port of the managers with a live heartbeat row; None from a manager older than
    ListManagers (UNIMPLEMENTED)."""
    try:
        answer = stub.ListManagers(pb.ListManagersRequest(), timeout=timeout)
    except grpc.RpcError as exc:
        if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return None
        raise
    return frozenset(m.grpc_address for m in answer.managers)


def observe_live(targets: Targets, timeout: float = 5.0, database: bool = True) -> ClusterState:
    """Live state; an unreachable manager means "nothing yet" only before the first apply.
    A manager that serves another cluster is refused (see check_cluster). With `database`,
    the namespaces and migrations of the modules granted `db` are read from [database]."""
    credentials = resolve_credentials(targets.config)
    try:
        state = observe(targets.manager.endpoints, credentials, timeout)
    except ManagerUnreachable as exc:
        marker = _marker(targets)
        if marker.exists():
            raise ManagerUnreachable(
                f"{exc}; this cluster was applied before ({marker}), so its live "
                "state cannot be assumed empty"
            ) from None
        state = nothing_yet()
    else:
        check_cluster(targets, state.cluster)
    return with_database(targets, state) if database else state


def with_database(targets: Targets, state: ClusterState) -> ClusterState:
    """state plus what [database] holds for the cluster's db namespaces. Unlike the manager,
    the database is not something apply creates: unreachable, it is an error even before
    the first apply (DatabaseUnreachable names the URL), not "nothing yet"."""
    from wrctl.db.observe import observe_database
    from wrctl.plan.database import live_resources

    states = observe_database(targets.config)
    if not states:
        return state
    found = live_resources(targets.config, states, state.secrets)
    return replace(state, resources={**state.resources, **{r.address: r for r in found}})


def check_cluster(targets: Targets, served: str) -> None:
    """Refuse to act on a manager that says it serves another cluster (a plan against it
    would replace that cluster's manager and nodes), unless the user allowed it. A manager
    that does not say (one run by hand) is taken as it is."""
    ours = targets.config.cluster.name
    if not served or served == ours or targets.overrides.allow_other_cluster:
        return
    raise OtherClusterError(
        f"the manager at {targets.manager.endpoint} serves cluster {served!r}, not {ours!r} "
        f"of {targets.config.source}: another cluster's manager answers on that address. "
        f"Give {ours!r} a manager address of its own ([manager] port, --manager or "
        "WR_MANAGER), or pass --allow-other-cluster to take that manager over on purpose"
    )


def _marker(targets: Targets) -> Path:
    config = targets.config
    return config.source.parent / ".wrctl" / f"{config.cluster.name}.applied"


def mark_applied(targets: Targets, serial: int) -> None:
    """Remember that this cluster has a manager, so a later unreachable manager is an error."""
    write_atomic(_marker(targets), f"{targets.manager.endpoint} serial={serial}\n".encode())


def forget_applied(targets: Targets) -> None:
    _marker(targets).unlink(missing_ok=True)

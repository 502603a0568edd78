"""Take targets off their hosts: a node that cluster.toml no longer declares (on apply), or
the whole cluster (destroy), leaving nothing wrctl put on a host, keys included."""

from __future__ import annotations

from wrctl.config.targets import HostTarget, target_name
from wrctl.deploy.hosts import open_host
from wrctl.deploy.rollout import Rollout, TargetHost
from wrctl.deploy.session import Report, Session, TargetResult, open_session
from wrctl.deploy.transport import quote
from wrctl.errors import WrctlError
from wrctl.plan import Plan

# What install.sh and the formats keep in WORKDIR for all of its targets.
SHARED_LEFTOVERS = ("supervisord.conf", "run", "logs", "cache", "venvs", "supervisor-venv")


def remove_target(host: TargetHost, target: str) -> None:
    """Stop and delete the target; when it was the host's last, also what the workdir keeps
    for all targets, and the workdir itself when nothing else is in it."""
    Rollout(host, target).remove()
    if not host.format.shutdown_if_idle():
        return
    root = host.format.install_as_root
    leftovers = " ".join(quote(f"{host.workdir}/{name}") for name in SHARED_LEFTOVERS)
    host.transport.run(f"rm -rf {leftovers}", sudo=root)
    # rmdir removes only an empty dir; sudo for one made under a root-owned parent
    host.transport.run(f"rmdir {quote(host.workdir)} 2>/dev/null || true", sudo=root or host.sudo)


def remove_recorded_node(session: Session, plan: Plan, node: str) -> None:
    """Remove a node found where its last release was recorded, and drop its record."""
    address = f"node.{node}"
    place = plan.targets.recorded(address, plan.live.resources[address].attributes)
    remove_at(place)
    session.client.delete_release(node, session.lock_id)
    session.report(place.name, "removed")


def remove_at(place: HostTarget) -> None:
    """Remove the target of `place` from its host."""
    host = open_host(place)
    try:
        remove_target(host, place.name)
    finally:
        host.transport.close()


def _remove_unrecorded_node(session: Session, plan: Plan, node: str) -> TargetResult | None:
    """A declared node without a recorded release: a failed first deploy may have left files
    (its TLS key among them) on its host. Removed when there; an unreachable host is an
    error only when the manager's history shows an attempt on it."""
    place = plan.targets.node(node).place
    try:
        host = open_host(place)
    except WrctlError as exc:
        if session.client.history(node, limit=1):
            raise WrctlError(f"{place.name}: a failed deploy left files there: {exc}") from None
        session.report(place.name, f"not reachable, and never deployed: left alone ({exc})")
        return None
    try:
        there = host.transport.run(f"test -e {quote(host.path(place.name))}", check=False).ok
        if not there:
            return None
        remove_target(host, place.name)
    finally:
        host.transport.close()
    session.report(place.name, "removed (what a failed deploy left)")
    return TargetResult(place.name, "removed")


def destroy_cluster(plan: Plan, report: Report) -> list[TargetResult]:
    """Remove every node (recorded, or declared and left by a failed deploy), then the
    manager (its state included) and what the hosts' workdirs keep for all targets."""
    results: list[TargetResult] = []
    recorded = sorted(
        r.address.removeprefix("node.") for r in plan.live.resources.values() if r.kind == "node"
    )
    unrecorded = [n.name for n in plan.targets.nodes if n.name not in recorded]
    with open_session(plan.targets, report) as session, session.locked("destroy"):
        for node in recorded:
            remove_recorded_node(session, plan, node)
            results.append(TargetResult(target_name(f"node.{node}"), "removed"))
        for node in unrecorded:
            removed = _remove_unrecorded_node(session, plan, node)
            results += [removed] if removed else []
    for place in _manager_places(plan):
        remove_at(place)
    report("manager", "removed")
    results.append(TargetResult("manager", "removed"))
    return results


def _manager_places(plan: Plan) -> list[HostTarget]:
    """Where managers run: each where it was recorded, then the declared hosts no record
    names (a manager that never passed its gate); one manager: where it was recorded, else
    where cluster.toml puts it."""
    recorded = [r for r in plan.live.resources.values() if r.kind == "manager"]
    places = [plan.targets.recorded(r.address, r.attributes) for r in recorded]
    if len(plan.targets.manager.places) == 1 and places:
        return places
    hosts = {p.host for p in places}
    return places + [p for p in plan.targets.manager.places if p.host not in hosts]

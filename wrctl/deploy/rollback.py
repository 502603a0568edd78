"""`wrctl rollback`: return nodes to the release they ran before their current one, on
demand. The old release must still be on the host (the last 3 are kept); its record in the
manager's history says what the health gate must see."""

from __future__ import annotations

import json
from dataclasses import dataclass

from runtime.api import wruntime_pb2 as pb
from wrctl.config.targets import NodeTarget
from wrctl.deploy.noderollout import Expectation
from wrctl.deploy.rollout import Rollout
from wrctl.deploy.session import ApplyFailed, Session, TargetResult
from wrctl.errors import WrctlError
from wrctl.managerapi import ManagerClient
from wrctl.observe import check_cluster, mark_applied
from wrctl.plan.live import RESOURCES_KEY
from wrctl.plan.state import Resource


class RollbackError(WrctlError):
    """A node cannot be rolled back (nothing recorded before, or the release is gone)."""


@dataclass(frozen=True)
class NodeRollback:
    """One node's way back: the release it runs now and the one before it."""

    node: NodeTarget
    current: pb.ReleaseRecord
    previous: pb.ReleaseRecord


def plan_rollback(session: Session, nodes: list[str] | None) -> list[NodeRollback]:
    """The named nodes (default: every node with a recorded release), each checked to have
    a release to return to; RollbackError naming the first that has none."""
    client = session.client
    state = client.state()
    check_cluster(session.targets, state.cluster)
    current = {n.name: n.release for n in state.nodes if n.HasField("release")}
    chosen = nodes or sorted(current)
    unknown = [n for n in chosen if n not in current]
    if unknown:
        raise RollbackError(
            f"node {unknown[0]}: the manager has no release recorded for it "
            f"(nodes with one: {', '.join(sorted(current)) or 'none'})"
        )
    if not chosen:
        raise RollbackError("nothing to roll back: no node has a recorded release")
    return [
        NodeRollback(session.targets.node(n), current[n], _previous(client, n, current[n]))
        for n in chosen
    ]


def rollback_nodes(session: Session, steps: list[NodeRollback]) -> list[TargetResult]:
    """Roll the nodes back one at a time, stopping at the first failure. The caller holds
    the apply lock (`session.locked`)."""
    results: list[TargetResult] = []
    for step in steps:
        result = _rollback_node(session, step)
        results.append(result)
        if result.status != "rolled-back":
            raise ApplyFailed(f"{result.target}: {result.detail.splitlines()[0]}", results)
    mark_applied(session.targets, session.client.state().serial)
    return results


def _previous(client: ManagerClient, node: str, current: pb.ReleaseRecord) -> pb.ReleaseRecord:
    """The record of the release that ran before `current` on node."""
    wanted = current.previous_bundle_digest
    if not wanted:
        raise RollbackError(
            f"node {node}: release {current.bundle_digest[:19]} is the first one recorded; "
            "there is nothing before it to return to"
        )
    for record in client.history(node, 1000):
        if record.bundle_digest == wanted and record.status != "failed":
            return record
    raise RollbackError(
        f"node {node}: the previous release {wanted[:19]} is not in the manager's history"
    )


def _node_resource(record: pb.ReleaseRecord, node: str) -> Resource:
    for item in json.loads(record.attributes.get(RESOURCES_KEY, "[]")):
        resource = Resource.from_json(item)
        if resource.address == f"node.{node}":
            return resource
    raise RollbackError(f"node {node}: release {record.bundle_digest[:19]} has no node record")


def _engines(resource: Resource) -> int:
    return int(resource.attributes.get("engines", "1"))


def _rollback_node(session: Session, step: NodeRollback) -> TargetResult:
    """Switch one node back where its current release was applied, behind the health gate;
    a node that fails it goes forward again to the release it ran."""
    node = step.node
    now_on = _node_resource(step.current, node.name)
    going_to = _node_resource(step.previous, node.name)
    place = session.targets.recorded(node.place.address, now_on.attributes)
    rollout = session.open(place)
    try:
        release = step.previous.bundle_digest.removeprefix("sha256:")
        if not rollout.has_release(release):
            raise RollbackError(
                f"node {node.name}: release {release[:12]} is no longer on {place.host} "
                "(only the last 3 are kept); run wrctl apply with the configuration you want "
                "instead"
            )
        running = rollout.current_release()
        _record_pending(session, step.previous)
        rollout.switch(release)
        session.report(place.name, f"switched back to release {release[:12]}")
        back = Expectation(_engines(going_to), dict(step.previous.module_digests))
        forward = Expectation(_engines(now_on), dict(step.current.module_digests))
        return _gate(session, rollout, step, running, (back, forward))
    finally:
        rollout.host.transport.close()


def _record_pending(session: Session, going_to: pb.ReleaseRecord) -> None:
    """Let the manager authorise the release the node goes back to (its modules and secret
    grants) before its engines restart and register them."""
    record = pb.ReleaseRecord()
    record.CopyFrom(going_to)
    record.ClearField("applied_at")
    record.status = "pending"
    record.message = ""
    session.record(record)


def _gate(
    session: Session,
    rollout: Rollout,
    step: NodeRollback,
    running: str | None,
    expected: tuple[Expectation, Expectation],
) -> TargetResult:
    gate = session.gate(rollout, step.node)
    target = rollout.target
    try:
        detail = gate.restart_and_wait(expected[0])
    except WrctlError as exc:
        logs = rollout.log_tail(50)
        again = gate.return_to(running, expected[1])
        return TargetResult(target, "failed", f"{exc}\n{again}", logs)
    session.report(target, f"healthy: {detail}")
    record = pb.ReleaseRecord()
    record.CopyFrom(step.previous)
    record.ClearField("applied_at")
    record.status = "rolled-back"
    record.message = f"wrctl rollback from {step.current.bundle_digest[:19]}"
    record.previous_bundle_digest = step.current.bundle_digest
    session.record(record)
    release = step.previous.bundle_digest.removeprefix("sha256:")
    return TargetResult(target, "rolled-back", f"now on {release[:12]}")

"""`wrctl rollback`: return nodes to the release they ran before their current one, on
demand. The old release must still be on the host (the last 3 are kept); its record in the
manager's history says what the health gate must see."""

from __future__ import annotations

import json

from runtime.api import wruntime_pb2 as pb
from wrctl.bundle.build import manager_address_for_nodes, target_name
from wrctl.config import ClusterConfig
from wrctl.deploy.apply import ApplyFailed, TargetResult, applied_by
from wrctl.deploy.hosts import HostAccess, open_target
from wrctl.deploy.noderollout import Expectation, NodeGate, Report
from wrctl.deploy.rollout import Rollout, TargetHost
from wrctl.errors import WrctlError
from wrctl.managerapi import ManagerClient
from wrctl.plan import mark_applied
from wrctl.plan.live import RESOURCES_KEY
from wrctl.plan.state import Resource


class RollbackError(WrctlError):
    """A node cannot be rolled back (nothing recorded before, or the release is gone)."""


def rollback_nodes(
    config: ClusterConfig,
    nodes: list[str] | None,
    report: Report,
    health_timeout_s: float = 60.0,
    access: HostAccess | None = None,
) -> list[TargetResult]:
    """Roll the named nodes (default: every node with a recorded release) back, one at a
    time, stopping at the first failure."""
    client = ManagerClient(manager_address_for_nodes(config))
    try:
        with client.apply_lock("rollback") as lock:
            current = {n.name: n.release for n in client.state().nodes if n.HasField("release")}
            chosen = nodes or sorted(current)
            unknown = [n for n in chosen if n not in current]
            if unknown:
                raise RollbackError(
                    f"node {unknown[0]}: the manager has no release recorded for it "
                    f"(nodes with one: {', '.join(sorted(current)) or 'none'})"
                )
            if not chosen:
                raise RollbackError("nothing to roll back: no node has a recorded release")
            plans = {n: _previous(client, n, current[n]) for n in chosen}  # check all first
            results: list[TargetResult] = []
            for node in chosen:
                result = _rollback_node(
                    config,
                    client,
                    lock.lock_id,
                    current[node],
                    plans[node],
                    report,
                    health_timeout_s,
                    access or HostAccess(),
                )
                results.append(result)
                if result.status != "rolled-back":
                    raise ApplyFailed(f"{result.target}: {result.detail.splitlines()[0]}", results)
        mark_applied(config, client.state().serial)
        return results
    finally:
        client.close()


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


def _admin_port(resource: Resource) -> int:
    ports = dict(p.split("=", 1) for p in resource.attributes.get("ports", "").split())
    return int(ports.get("admin", "9091"))


def _rollback_node(
    config: ClusterConfig,
    client: ManagerClient,
    lock_id: str,
    current: pb.ReleaseRecord,
    previous: pb.ReleaseRecord,
    report: Report,
    health_timeout_s: float,
    access: HostAccess,
) -> TargetResult:
    node = current.target
    target = target_name(node)
    now_on = _node_resource(current, node)
    host = open_target(config, now_on.attributes, now_on.address, access)
    try:
        return _switch_back(
            host, target, client, lock_id, current, previous, report, health_timeout_s
        )
    finally:
        host.transport.close()


def _switch_back(
    host: TargetHost,
    target: str,
    client: ManagerClient,
    lock_id: str,
    current: pb.ReleaseRecord,
    previous: pb.ReleaseRecord,
    report: Report,
    health_timeout_s: float,
) -> TargetResult:
    node = current.target
    now_on = _node_resource(current, node)
    going_to = _node_resource(previous, node)
    rollout = Rollout(host, target)
    release = previous.bundle_digest.removeprefix("sha256:")
    if not rollout.has_release(release):
        raise RollbackError(
            f"node {node}: release {release[:12]} is no longer on {now_on.attributes['host']} "
            "(only the last 3 are kept); run wrctl apply with the configuration you want instead"
        )
    running = rollout.current_release()
    gate = NodeGate(
        rollout,
        client,
        node,
        _admin_port(now_on),
        now_on.attributes.get("python", "python3"),
        health_timeout_s,
        report,
    )
    rollout.switch(release)
    report(target, f"switched back to release {release[:12]}")
    try:
        detail = gate.restart_and_wait(
            Expectation(int(going_to.attributes.get("engines", "1")), dict(previous.module_digests))
        )
    except WrctlError as exc:
        logs = rollout.log_tail(50)
        back = gate.return_to(
            running,
            Expectation(int(now_on.attributes.get("engines", "1")), dict(current.module_digests)),
        )
        return TargetResult(target, "failed", f"{exc}\n{back}", logs)
    report(target, f"healthy: {detail}")
    record = pb.ReleaseRecord()
    record.CopyFrom(previous)
    record.ClearField("applied_at")
    record.status = "rolled-back"
    record.message = f"wrctl rollback from {current.bundle_digest[:19]}"
    record.applied_by = applied_by()
    record.previous_bundle_digest = current.bundle_digest
    client.record(record, lock_id)
    return TargetResult(target, "rolled-back", f"now on {release[:12]}")

"""Execute a plan: manager first, then each affected node (upload, install, switch, restart,
health gate, record), then removals; under the manager's apply lock."""

from __future__ import annotations

import getpass
import socket
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runtime.api import wruntime_pb2 as pb
from wrctl.bundle.build import (
    STATE_PASSWORD,
    Bundle,
    build_bundles,
    manager_address_for_nodes,
    split_state_password,
    target_name,
)
from wrctl.bundle.deploy_options import options_for_apply
from wrctl.config import ClusterConfig
from wrctl.deploy.healthgate import engine_ids, wait_healthy, wait_proxy_synced
from wrctl.deploy.hosts import open_host
from wrctl.deploy.rollout import Rollout
from wrctl.deploy.transport import quote
from wrctl.errors import WrctlError
from wrctl.managerapi import ManagerClient
from wrctl.plan import Plan, Resource, mark_applied
from wrctl.plan.diff import ActionKind
from wrctl.plan.live import encode_resources

Report = Callable[[str, str], None]  # (target, message)


@dataclass
class TargetResult:
    target: str
    status: str  # "applied" | "removed" | "failed" | "rolled-back"
    detail: str = ""


class ApplyFailed(WrctlError):
    """A target failed; earlier targets stay applied, later ones untouched."""

    def __init__(self, message: str, results: list[TargetResult]) -> None:
        super().__init__(message)
        self.results = results


@dataclass
class _Work:
    manager: bool
    nodes: list[str]  # to (re)deploy, in order
    removed: list[str]  # nodes to remove


def _work(plan: Plan) -> _Work:
    manager = False
    nodes: set[str] = set()
    removed: set[str] = set()
    for action in plan.actions:
        if action.resource_kind == "manager":
            manager = True
        elif action.resource_kind == "node" and action.kind is ActionKind.DESTROY:
            removed.add(action.address.removeprefix("node."))
        else:
            nodes.update(action.targets)
    return _Work(manager, sorted(nodes - removed), sorted(removed))


def apply_plan(plan: Plan, report: Report, health_timeout_s: float = 60.0) -> list[TargetResult]:
    """Converge the cluster to plan.desired; returns one result per target touched."""
    work = _work(plan)
    config = plan.config
    results: list[TargetResult] = []
    with tempfile.TemporaryDirectory(prefix="wrctl-bundles-") as tmp:
        report("bundles", f"building for {', '.join(['manager', *work.nodes])}")
        options = options_for_apply(config, work.nodes)
        built = build_bundles(config, Path(tmp), _version(plan), work.nodes, options)
        bundles = {b.target: b for b in built}
        client = ManagerClient(manager_address_for_nodes(config))
        try:
            if work.manager and not plan.live.reachable:
                _deploy_manager(plan, bundles["manager"], client, report)
            with client.apply_lock("apply") as lock:
                if work.manager:
                    if plan.live.reachable:
                        _deploy_manager(plan, bundles["manager"], client, report)
                    _record(
                        client,
                        lock.lock_id,
                        "manager",
                        bundles["manager"],
                        [plan.desired.resources["manager"]],
                    )
                    results.append(TargetResult("manager", "applied"))
                for node in work.nodes:
                    results.append(
                        _deploy_node(
                            plan,
                            node,
                            bundles[target_name(node)],
                            client,
                            lock.lock_id,
                            report,
                            health_timeout_s,
                        )
                    )
                    if results[-1].status != "applied":
                        raise ApplyFailed(f"node {node}: {results[-1].detail}", results)
                for node in work.removed:
                    _remove_node(plan, node, client, lock.lock_id, report)
                    results.append(TargetResult(target_name(node), "removed"))
            mark_applied(config, client.state().serial)
        finally:
            client.close()
    return results


def _version(plan: Plan) -> str:
    return plan.desired.resources["manager"].attributes["runtime_version"]


def _deploy_manager(plan: Plan, bundle: Bundle, client: ManagerClient, report: Report) -> None:
    resource = plan.desired.resources["manager"]
    rollout = Rollout(open_host(resource.attributes, "manager"), "manager")
    _, password = split_state_password(plan.config.manager.state)
    env = {STATE_PASSWORD.env: password} if password is not None else {}
    _install(rollout, bundle, report, plan.config, resource.attributes.get("python"), env)
    rollout.restart()
    report("manager", "started; waiting for it to answer")
    client.wait_ready(30.0)


def _install(
    rollout: Rollout,
    bundle: Bundle,
    report: Report,
    config: ClusterConfig,
    python: str | None,
    env: dict[str, str] | None = None,
) -> str | None:
    previous = rollout.current_release()
    uploaded = rollout.upload(bundle)
    report(
        rollout.target,
        f"bundle {bundle.digest[:19]} " + ("uploaded" if uploaded else "already on host"),
    )
    release = rollout.unpack_and_install(
        bundle, config.bundle.trusted_keys, python or "python3", env
    )
    rollout.switch(release)
    report(rollout.target, f"switched to release {release[:12]}")
    return previous


def _deploy_node(
    plan: Plan,
    node: str,
    bundle: Bundle,
    client: ManagerClient,
    lock_id: str,
    report: Report,
    health_timeout_s: float,
) -> TargetResult:
    resource = plan.desired.resources[f"node.{node}"]
    rollout = Rollout(open_host(resource.attributes, resource.address), target_name(node))
    previous = _install(rollout, bundle, report, plan.config, resource.attributes.get("python"))
    admin_port = next(n for n in plan.config.node if n.name == node).admin_port
    engines = int(resource.attributes["engines"])
    python = resource.attributes.get("python", "python3")
    try:
        detail = _restart_and_gate(
            rollout,
            client,
            node,
            engines,
            bundle.module_digests,
            admin_port,
            health_timeout_s,
            report,
            python,
        )
        report(rollout.target, f"healthy: {detail}")
    except WrctlError as exc:
        logs = rollout.log_tail(50)
        rollout.switch(previous)
        if not previous:
            rollout.host.format.remove(rollout.target)
            report(rollout.target, "stopped (no previous release)")
            return TargetResult(rollout.target, "rolled-back", f"{exc}\n{logs}")
        old = plan.live.resources.get(f"node.{node}", resource)
        try:
            _restart_and_gate(
                rollout,
                client,
                node,
                int(old.attributes.get("engines", engines)),
                _recorded_digests(plan, node),
                admin_port,
                health_timeout_s,
                report,
                python,
            )
            report(rollout.target, "rolled back to the previous release, which is healthy")
        except WrctlError as again:
            report(rollout.target, f"rolled back, but the previous release is unhealthy: {again}")
        return TargetResult(rollout.target, "rolled-back", f"{exc}\n{logs}")
    placed = [resource] + [
        r for r in plan.desired.resources.values() if r.kind == "module" and node in r.targets
    ]
    _record(client, lock_id, node, bundle, placed)
    for pruned in rollout.prune():
        report(rollout.target, f"pruned old release {pruned[:12]}")
    return TargetResult(rollout.target, "applied")


def _restart_and_gate(
    rollout: Rollout,
    client: ManagerClient,
    node: str,
    engines: int,
    modules: dict[str, str],
    admin_port: int,
    timeout_s: float,
    report: Report,
    python: str = "python3",
) -> str:
    """Restart the node's services and wait until its new engines serve `modules` and its proxy
    routes with the manager's current table."""
    before = engine_ids(client, node)
    rollout.restart()
    report(rollout.target, "restarted; waiting for the health gate")
    gate = wait_healthy(client, node, engines, modules, timeout_s, stale=before)
    wait_proxy_synced(rollout.host.transport, python, admin_port, client.routing_version(), 10.0)
    return gate.detail


def _recorded_digests(plan: Plan, node: str) -> dict[str, str]:
    """Module key -> component digest of what the node's last recorded release runs."""
    return {
        f"{r.address.split('.', 1)[1]}@{r.attributes['version']}": r.attributes["component"]
        for r in plan.live.resources.values()
        if r.kind == "module" and node in r.targets
    }


def _remove_node(
    plan: Plan, node: str, client: ManagerClient, lock_id: str, report: Report
) -> None:
    resource = plan.live.resources[f"node.{node}"]
    rollout = Rollout(open_host(resource.attributes, resource.address), target_name(node))
    rollout.remove()
    client.delete_release(node, lock_id)
    report(rollout.target, "removed")


def _record(
    client: ManagerClient, lock_id: str, target: str, bundle: Bundle, resources: list[Resource]
) -> None:
    release = pb.ReleaseRecord(
        target=target,
        bundle_digest=bundle.digest,
        module_digests=bundle.module_digests,
        runtime_version=resources[0].attributes.get("runtime_version", ""),
        applied_by=f"{getpass.getuser()}@{socket.gethostname()}",
        status="applied",
        attributes=encode_resources(resources),
    )
    client.record(release, lock_id)


def destroy_cluster(config: ClusterConfig, plan: Plan, report: Report) -> list[TargetResult]:
    """Remove every node, then the manager (its state included) and the shared supervisord."""
    results: list[TargetResult] = []
    client = ManagerClient(manager_address_for_nodes(config))
    try:
        nodes = sorted(
            r.address.removeprefix("node.")
            for r in plan.live.resources.values()
            if r.kind == "node"
        )
        with client.apply_lock("destroy") as lock:
            for node in nodes:
                _remove_node(plan, node, client, lock.lock_id, report)
                results.append(TargetResult(target_name(node), "removed"))
    finally:
        client.close()
    manager = plan.live.resources.get("manager") or plan.desired.resources["manager"]
    host = open_host(manager.attributes, "manager")
    Rollout(host, "manager").remove()
    if host.format.shutdown_if_idle():
        leftovers = [f"{host.workdir}/{d}" for d in ("supervisord.conf", "run", "logs", "cache")]
        host.transport.run("rm -rf " + " ".join(quote(p) for p in leftovers))
        host.transport.run(f"rmdir {quote(host.workdir)} 2>/dev/null || true")
    report("manager", "removed")
    results.append(TargetResult("manager", "removed"))
    return results

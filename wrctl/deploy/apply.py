"""Execute a plan: manager first, then each affected node (upload, install, switch, restart,
health gate, record), then removals; under the manager's apply lock."""

from __future__ import annotations

import getpass
import socket
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from runtime.api import wruntime_pb2 as pb
from wrctl.bundle.build import Bundle, build_bundles, manager_address_for_nodes, target_name
from wrctl.config import ClusterConfig
from wrctl.deploy.hosts import open_host
from wrctl.deploy.noderollout import Expectation, NodeGate
from wrctl.deploy.rollout import Rollout
from wrctl.deploy.transport import quote
from wrctl.errors import WrctlError
from wrctl.managerapi import ManagerClient
from wrctl.pki import NodeCredentials, cluster_ca
from wrctl.plan import Plan, Resource, mark_applied
from wrctl.plan.diff import ActionKind
from wrctl.plan.live import encode_resources

Report = Callable[[str, str], None]  # (target, message)


@dataclass
class TargetResult:
    target: str
    status: str  # "applied" | "removed" | "failed" | "rolled-back" | "skipped"
    detail: str = ""
    logs: str = ""  # the failing services' last log lines


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


def apply_plan(
    plan: Plan, report: Report, health_timeout_s: float = 60.0, parallel: int = 1
) -> list[TargetResult]:
    """Converge the cluster to plan.desired, `parallel` nodes at a time; returns one result
    per target. ApplyFailed (carrying every result) when a node failed."""
    work = _work(plan)
    config = plan.config
    results: list[TargetResult] = []
    with tempfile.TemporaryDirectory(prefix="wrctl-bundles-") as tmp:
        report("bundles", f"building for {', '.join(['manager', *work.nodes])}")
        bundles = {
            b.target: b for b in build_bundles(config, Path(tmp), _version(plan), work.nodes)
        }
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
                        plan.live.bundles.get("manager", ""),
                    )
                    results.append(TargetResult("manager", "applied"))
                node_results = _deploy_nodes(
                    plan,
                    work.nodes,
                    bundles,
                    client,
                    lock.lock_id,
                    report,
                    health_timeout_s,
                    parallel,
                )
                results.extend(node_results)
                failed = [r for r in node_results if r.status in ("failed", "rolled-back")]
                if failed:
                    raise ApplyFailed(
                        f"{failed[0].target}: {failed[0].detail.splitlines()[0]}", results
                    )
                for node in work.removed:
                    _remove_node(plan, node, client, lock.lock_id, report)
                    results.append(TargetResult(target_name(node), "removed"))
            mark_applied(config, client.state().serial)
        finally:
            client.close()
    return results


def _deploy_nodes(
    plan: Plan,
    nodes: list[str],
    bundles: dict[str, Bundle],
    client: ManagerClient,
    lock_id: str,
    report: Report,
    health_timeout_s: float,
    parallel: int,
) -> list[TargetResult]:
    """Roll nodes out `parallel` at a time, in order. After the first failure no new node
    starts (those in flight finish, rolling back if they must); the rest stay untouched."""

    cancel = threading.Event()
    ca = cluster_ca(plan.config.source, plan.config.cluster.name)  # before any thread runs
    credentials = {node: ca.node_credentials(node, _peer_host(plan, node)) for node in nodes}

    def one(node: str) -> TargetResult:
        return _deploy_node(
            plan,
            node,
            bundles[target_name(node)],
            client,
            lock_id,
            report,
            health_timeout_s,
            credentials[node],
            cancel,
        )

    results: dict[str, TargetResult] = {}
    pending = list(nodes)
    if parallel <= 1:  # in the caller's thread, so Ctrl-C stops the step it is in
        while pending and all(r.status == "applied" for r in results.values()):
            node = pending.pop(0)
            results[node] = one(node)
    else:
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="node") as pool:
            running: dict[Future[TargetResult], str] = {}
            try:
                while pending or running:
                    stop = any(r.status != "applied" for r in results.values())
                    while pending and not stop and len(running) < parallel:
                        node = pending.pop(0)
                        running[pool.submit(one, node)] = node
                    if not running:
                        break
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        results[running.pop(future)] = future.result()
            except BaseException:
                cancel.set()  # Ctrl-C: nodes in flight stop at their next wait, unrecorded
                raise
    failed = next((n for n in nodes if n in results and results[n].status != "applied"), "")
    for node in pending:
        results[node] = TargetResult(
            target_name(node), "skipped", f"not started: {target_name(failed)} failed"
        )
    return [results[n] for n in nodes if n in results]


def _version(plan: Plan) -> str:
    return plan.desired.resources["manager"].attributes["runtime_version"]


def _deploy_manager(plan: Plan, bundle: Bundle, client: ManagerClient, report: Report) -> None:
    resource = plan.desired.resources["manager"]
    rollout = Rollout(open_host(resource.attributes, "manager"), "manager")
    _install(rollout, bundle, report)
    rollout.restart()
    report("manager", "started; waiting for it to answer")
    client.wait_ready(30.0)


def _install(rollout: Rollout, bundle: Bundle, report: Report) -> str | None:
    previous = rollout.current_release()
    uploaded = rollout.upload(bundle)
    report(
        rollout.target,
        f"bundle {bundle.digest[:19]} " + ("uploaded" if uploaded else "already on host"),
    )
    release = rollout.unpack_and_install(bundle)
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
    credentials: NodeCredentials,
    cancel: threading.Event | None = None,
) -> TargetResult:
    """Roll one node onto its new bundle; a failure after the switch returns it to the
    release it ran before. Every failed attempt is recorded in the manager's history."""
    resource = plan.desired.resources[f"node.{node}"]
    target = target_name(node)
    recorded = plan.live.resources.get(f"node.{node}")
    previous_digest = plan.live.bundles.get(node, "")
    try:
        rollout = Rollout(open_host(resource.attributes, resource.address), target)
        if rollout.put_credentials(credentials.files()):
            report(target, "peer TLS certificate installed")
        previous = _install(rollout, bundle, report)
    except WrctlError as exc:
        _record_failure(client, lock_id, node, bundle, previous_digest, str(exc), _version(plan))
        return TargetResult(target, "failed", str(exc))
    gate = NodeGate(
        rollout,
        client,
        node,
        next(n for n in plan.config.node if n.name == node).admin_port,
        resource.attributes.get("python", "python3"),
        health_timeout_s,
        report,
        cancel,
    )
    try:
        detail = gate.restart_and_wait(
            Expectation(int(resource.attributes["engines"]), bundle.module_digests)
        )
    except WrctlError as exc:
        logs = rollout.log_tail(50)
        old = Expectation(
            int((recorded or resource).attributes.get("engines", "1")),
            _recorded_digests(plan, node),
        )
        back = gate.return_to(previous, old if recorded else None)
        _record_failure(
            client, lock_id, node, bundle, previous_digest, f"{exc}; {back}", _version(plan)
        )
        return TargetResult(target, "rolled-back", f"{exc}\n{back}", logs)
    report(target, f"healthy: {detail}")
    placed = [resource] + [
        r for r in plan.desired.resources.values() if r.kind == "module" and node in r.targets
    ]
    _record(client, lock_id, node, bundle, placed, previous_digest)
    for pruned in rollout.prune():
        report(target, f"pruned old release {pruned[:12]}")
    return TargetResult(target, "applied")


def _peer_host(plan: Plan, node: str) -> str:
    host = next(n.host for n in plan.config.node if n.name == node)
    return "127.0.0.1" if host == "local" else host


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
    client: ManagerClient,
    lock_id: str,
    target: str,
    bundle: Bundle,
    resources: list[Resource],
    previous_digest: str = "",
) -> None:
    release = pb.ReleaseRecord(
        target=target,
        bundle_digest=bundle.digest,
        module_digests=bundle.module_digests,
        runtime_version=resources[0].attributes.get("runtime_version", ""),
        applied_by=applied_by(),
        status="applied",
        attributes=encode_resources(resources),
        previous_bundle_digest=previous_digest,
    )
    client.record(release, lock_id)


def _record_failure(
    client: ManagerClient,
    lock_id: str,
    node: str,
    bundle: Bundle,
    previous_digest: str,
    message: str,
    runtime_version: str,
) -> None:
    """Keep the failed attempt in the manager's history; it does not replace what runs."""
    release = pb.ReleaseRecord(
        target=node,
        bundle_digest=bundle.digest,
        module_digests=bundle.module_digests,
        runtime_version=runtime_version,
        applied_by=applied_by(),
        status="failed",
        message=message[:2000],
        previous_bundle_digest=previous_digest,
    )
    with suppress(WrctlError):  # the history is a courtesy; the failure itself is reported
        client.record(release, lock_id)


def applied_by() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


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

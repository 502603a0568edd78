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
from dataclasses import dataclass, field
from pathlib import Path

from runtime.api import wruntime_pb2 as pb
from runtime.wire import module_key
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
from wrctl.deploy.hosts import HostAccess, open_target
from wrctl.deploy.noderollout import Expectation, NodeGate
from wrctl.deploy.preflight import check_and_prepare
from wrctl.deploy.rollout import Rollout
from wrctl.deploy.transport import Progress, quote
from wrctl.errors import ManagerUnreachable, WrctlError
from wrctl.managerapi import ManagerClient
from wrctl.pki import NodeCredentials, cluster_ca
from wrctl.plan import Plan, Resource, mark_applied
from wrctl.plan.diff import ActionKind
from wrctl.plan.live import encode_resources

Report = Callable[[str, str], None]  # (target, message)
UploadBar = Callable[[str, int], Progress]  # (target, total bytes) -> progress callback


@dataclass(frozen=True)
class ApplyOptions:
    health_timeout_s: float = 60.0
    parallel: int = 1  # nodes rolled out at the same time
    access: HostAccess = field(default_factory=HostAccess)
    upload_bar: UploadBar | None = None


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
    plan: Plan, report: Report, options: ApplyOptions | None = None
) -> list[TargetResult]:
    """Converge the cluster to plan.desired, `options.parallel` nodes at a time; returns one
    result per target. ApplyFailed (carrying every result) when a node failed."""
    options = options or ApplyOptions()
    work = _work(plan)
    config = plan.config
    results: list[TargetResult] = []
    with tempfile.TemporaryDirectory(prefix="wrctl-bundles-") as tmp:
        report("bundles", f"building for {', '.join(['manager', *work.nodes])}")
        bundling = options_for_apply(config, work.nodes)
        built = build_bundles(config, Path(tmp), _version(plan), work.nodes, bundling)
        bundles = {b.target: b for b in built}
        client = ManagerClient(manager_address_for_nodes(config))
        run = _Run(plan, client, report, options)
        try:
            if work.manager and not plan.live.reachable:
                run.deploy_manager(bundles["manager"])
            with client.apply_lock("apply") as lock:
                run.lock_id = lock.lock_id
                if work.manager:
                    if plan.live.reachable:
                        run.deploy_manager(bundles["manager"])
                    run.record("manager", bundles["manager"], [plan.desired.resources["manager"]])
                    results.append(TargetResult("manager", "applied"))
                node_results = run.deploy_nodes(work.nodes, bundles)
                results.extend(node_results)
                failed = [r for r in node_results if r.status in ("failed", "rolled-back")]
                if failed:
                    raise ApplyFailed(
                        f"{failed[0].target}: {failed[0].detail.splitlines()[0]}", results
                    )
                for node in work.removed:
                    run.remove_node(node)
                    results.append(TargetResult(target_name(node), "removed"))
            mark_applied(config, client.state().serial)
        finally:
            client.close()
    return results


def _version(plan: Plan) -> str:
    return plan.desired.resources["manager"].attributes["runtime_version"]


@dataclass
class _Run:
    """One apply's shared parts: the plan, the manager, the lock, how to report."""

    plan: Plan
    client: ManagerClient
    report: Report
    options: ApplyOptions
    lock_id: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)

    def open(self, resource: Resource, target: str) -> Rollout:
        host = open_target(
            self.plan.config, resource.attributes, resource.address, self.options.access
        )
        return Rollout(host, target)

    def deploy_manager(self, bundle: Bundle) -> None:
        rollout = self.open(self.plan.desired.resources["manager"], "manager")
        try:
            self.install(rollout, bundle)
            rollout.restart()
            self.report("manager", "started; waiting for it to answer")
            try:
                self.client.wait_ready(self.options.health_timeout_s)
            except ManagerUnreachable as exc:
                logs = rollout.log_tail(50).rstrip()
                raise ManagerUnreachable(f"{exc}; its last log lines:\n{logs}") from None
        finally:
            rollout.host.transport.close()

    def install(
        self, rollout: Rollout, bundle: Bundle, credentials: NodeCredentials | None = None
    ) -> str | None:
        """Preflight, upload (unless there), verify, unpack, install, switch `current`;
        returns the release that was current before."""
        check_and_prepare(rollout.host, bundle.path)
        previous = rollout.current_release()
        bar = self.options.upload_bar
        uploaded = rollout.upload(
            bundle, bar(rollout.target, bundle.path.stat().st_size) if bar else None
        )
        self.report(
            rollout.target,
            f"bundle {bundle.digest[:19]} " + ("uploaded" if uploaded else "already on host"),
        )
        release = rollout.unpack_and_install(
            bundle, self.plan.config.bundle.trusted_keys, self.host_secrets(rollout.target)
        )
        if credentials is not None and rollout.put_credentials(credentials.files()):
            self.report(rollout.target, "peer TLS certificate installed")
        rollout.switch(release)
        self.report(rollout.target, f"switched to release {release[:12]}")
        return previous

    def host_secrets(self, target: str) -> dict[str, str]:
        """What install.sh writes on the host from its environment, never from the bundle:
        the password of the manager's PostgreSQL state DSN."""
        _, password = split_state_password(self.plan.config.manager.state)
        if target != "manager" or password is None:
            return {}
        return {STATE_PASSWORD.env: password}

    def deploy_nodes(self, nodes: list[str], bundles: dict[str, Bundle]) -> list[TargetResult]:
        """Roll nodes out `parallel` at a time, in order. After the first failure no new node
        starts (those in flight finish, rolling back if they must); the rest stay untouched."""
        ca = cluster_ca(self.plan.config.source, self.plan.config.cluster.name)
        credentials = {n: ca.node_credentials(n, _peer_host(self.plan, n)) for n in nodes}

        def one(node: str) -> TargetResult:
            return self.deploy_node(node, bundles[target_name(node)], credentials[node])

        results: dict[str, TargetResult] = {}
        pending = list(nodes)
        parallel = self.options.parallel
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
                    self.cancel.set()  # Ctrl-C: nodes in flight stop at their next wait
                    raise
        failed = next((n for n in nodes if n in results and results[n].status != "applied"), "")
        for node in pending:
            results[node] = TargetResult(
                target_name(node), "skipped", f"not started: {target_name(failed)} failed"
            )
        return [results[n] for n in nodes if n in results]

    def deploy_node(self, node: str, bundle: Bundle, credentials: NodeCredentials) -> TargetResult:
        """Roll one node onto its new bundle; a failure after the switch returns it to the
        release it ran before. Every failed attempt is recorded in the manager's history."""
        plan = self.plan
        resource = plan.desired.resources[f"node.{node}"]
        target = target_name(node)
        recorded = plan.live.resources.get(f"node.{node}")
        try:
            rollout = self.open(resource, target)
        except WrctlError as exc:
            self.record_failure(node, bundle, str(exc))
            return TargetResult(target, "failed", str(exc))
        try:
            try:
                previous = self.install(rollout, bundle, credentials)
            except WrctlError as exc:
                self.record_failure(node, bundle, str(exc))
                return TargetResult(target, "failed", str(exc))
            gate = NodeGate(
                rollout,
                self.client,
                node,
                next(n for n in plan.config.node if n.name == node).admin_port,
                resource.attributes.get("python", "python3"),
                self.options.health_timeout_s,
                self.report,
                self.cancel,
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
                self.record_failure(node, bundle, f"{exc}; {back}")
                return TargetResult(target, "rolled-back", f"{exc}\n{back}", logs)
            self.report(target, f"healthy: {detail}")
            placed = [resource] + [
                r
                for r in plan.desired.resources.values()
                if r.kind == "module" and node in r.targets
            ]
            self.record(node, bundle, placed)
            for pruned in rollout.prune():
                self.report(target, f"pruned old release {pruned[:12]}")
            return TargetResult(target, "applied")
        finally:
            rollout.host.transport.close()

    def remove_node(self, node: str) -> None:
        resource = self.plan.live.resources[f"node.{node}"]
        rollout = self.open(resource, target_name(node))
        try:
            rollout.remove()
        finally:
            rollout.host.transport.close()
        self.client.delete_release(node, self.lock_id)
        self.report(rollout.target, "removed")

    def record(self, target: str, bundle: Bundle, resources: list[Resource]) -> None:
        release = pb.ReleaseRecord(
            target=target,
            bundle_digest=bundle.digest,
            module_digests=bundle.module_digests,
            runtime_version=resources[0].attributes.get("runtime_version", ""),
            applied_by=applied_by(),
            status="applied",
            attributes=encode_resources(resources),
            previous_bundle_digest=self.plan.live.bundles.get(target, ""),
        )
        self.client.record(release, self.lock_id)

    def record_failure(self, node: str, bundle: Bundle, message: str) -> None:
        """Keep the failed attempt in the manager's history; it does not replace what runs."""
        release = pb.ReleaseRecord(
            target=node,
            bundle_digest=bundle.digest,
            module_digests=bundle.module_digests,
            runtime_version=_version(self.plan),
            applied_by=applied_by(),
            status="failed",
            message=message[:2000],
            previous_bundle_digest=self.plan.live.bundles.get(node, ""),
        )
        with suppress(WrctlError):  # the history is a courtesy; the failure itself is reported
            self.client.record(release, self.lock_id)


def _peer_host(plan: Plan, node: str) -> str:
    host = next(n.host for n in plan.config.node if n.name == node)
    return "127.0.0.1" if host == "local" else host


def _recorded_digests(plan: Plan, node: str) -> dict[str, str]:
    """Module key -> component digest of what the node's last recorded release runs."""
    digests = {}
    for r in plan.live.resources.values():
        if r.kind == "module" and node in r.targets:
            _, namespace, name = r.address.split(".")  # module.{namespace}.{name}
            digests[module_key(namespace, name, r.attributes["version"])] = r.attributes[
                "component"
            ]
    return digests


def applied_by() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def destroy_cluster(
    config: ClusterConfig, plan: Plan, report: Report, access: HostAccess | None = None
) -> list[TargetResult]:
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
            options = ApplyOptions(access=access or HostAccess())
            run = _Run(plan, client, report, options, lock.lock_id)
            for node in nodes:
                run.remove_node(node)
                results.append(TargetResult(target_name(node), "removed"))
    finally:
        client.close()
    manager = plan.live.resources.get("manager") or plan.desired.resources["manager"]
    host = open_target(config, manager.attributes, "manager", access or HostAccess())
    try:
        Rollout(host, "manager").remove()
        if host.format.shutdown_if_idle():
            leftovers = [
                f"{host.workdir}/{d}" for d in ("supervisord.conf", "run", "logs", "cache")
            ]
            root = host.format.install_as_root
            host.transport.run("rm -rf " + " ".join(quote(p) for p in leftovers), sudo=root)
            host.transport.run(f"rmdir {quote(host.workdir)} 2>/dev/null || true", sudo=root)
    finally:
        host.transport.close()
    report("manager", "removed")
    results.append(TargetResult("manager", "removed"))
    return results

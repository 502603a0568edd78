"""Execute a plan: manager first, then each affected node (upload, install, switch, restart,
health gate, record), then removals; under the manager's apply lock."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from runtime.api import wruntime_pb2 as pb
from runtime.engine.capabilities import secret_keys as capability_secret_keys
from runtime.wire import module_key
from wrctl.bundle.build import (
    STATE_PASSWORD,
    Bundle,
    build_bundles,
    split_state_password,
    state_password_file,
)
from wrctl.bundle.deploy_options import options_for_apply
from wrctl.config.model import ModuleSection, SecretRef
from wrctl.config.targets import HostTarget, NodeTarget, target_name
from wrctl.deploy.converge import announce_restarts, converge, restart_nodes
from wrctl.deploy.database import provision_and_migrate
from wrctl.deploy.destroy import destroy_cluster, remove_at, remove_recorded_node
from wrctl.deploy.noderollout import Expectation
from wrctl.deploy.preflight import check_and_prepare
from wrctl.deploy.rollout import Rollout
from wrctl.deploy.session import (
    ApplyFailed,
    ApplyOptions,
    Report,
    Session,
    TargetResult,
    open_session,
)
from wrctl.deploy.transport import quote
from wrctl.errors import ConfigError, ManagerUnreachable, WrctlError
from wrctl.managerapi import ManagerClient
from wrctl.observe import mark_applied
from wrctl.pki import NodeCredentials, cluster_ca
from wrctl.plan import Plan, Resource, check_secrets, schedules
from wrctl.plan.database import DATABASE, MIGRATION
from wrctl.plan.desired import TLS_ATTRIBUTE
from wrctl.plan.diff import Action, ActionKind
from wrctl.plan.live import encode_resources
from wrctl.plan.managers import MANAGER, MANAGER_BUNDLES, address_of, host_of

__all__ = ["ApplyFailed", "ApplyOptions", "TargetResult", "apply_plan", "destroy_cluster"]


@dataclass
class _Work:
    manager: bool  # a manager to (re)deploy
    nodes: list[str]  # to (re)deploy, in order
    removed: list[str]  # nodes to remove
    certificate_only: frozenset[str] = frozenset()  # nodes whose only change is a new cert
    databases: frozenset[str] = frozenset()  # namespaces with a database or migration action
    schedules: tuple[Action, ...] = ()  # written to the manager once the nodes are applied
    managers: tuple[str, ...] = ()  # manager resources to (re)deploy (the plan's order)
    removed_managers: tuple[str, ...] = ()  # manager.HOST no longer declared


def _work(plan: Plan) -> _Work:
    deployed_managers: list[str] = []
    removed_managers: list[str] = []
    nodes: set[str] = set()
    removed: set[str] = set()
    redeploy: set[str] = set()  # nodes with a change beyond their certificate
    databases: set[str] = set()
    scheduled: list[Action] = []
    for action in plan.actions:
        if action.resource_kind == MANAGER and action.kind is ActionKind.DESTROY:
            removed_managers.append(action.address)
        elif action.resource_kind == MANAGER:
            deployed_managers.append(action.address)
        elif action.resource_kind in (DATABASE, MIGRATION):
            databases.add(action.address.split(".")[1])
        elif action.resource_kind == schedules.KIND:
            scheduled.append(action)
        elif action.resource_kind == "node" and action.kind is ActionKind.DESTROY:
            removed.add(action.address.removeprefix("node."))
        else:
            nodes.update(action.targets)
            if not _certificate_only(action):
                redeploy.update(action.targets)
    restarts = restart_nodes(plan)  # drift a restart converges: redeploy in place
    nodes.update(restarts)
    redeploy.update(restarts)
    deployed = sorted(nodes - removed)
    certificate_only = frozenset(set(deployed) - redeploy)
    return _Work(
        bool(deployed_managers),
        deployed,
        sorted(removed),
        certificate_only,
        frozenset(databases),
        tuple(scheduled),
        tuple(deployed_managers),
        tuple(removed_managers),
    )


def _certificate_only(action: Action) -> bool:
    """A node update that changes only its certificate: the proxy reloads the new files by
    itself, so apply uploads them and restarts nothing."""
    return (
        action.resource_kind == "node"
        and action.kind is ActionKind.UPDATE
        and bool(action.changes)
        and all(c.attribute == TLS_ATTRIBUTE for c in action.changes)
    )


def secret_grants(
    modules: Iterable[ModuleSection], capability_config: Mapping[str, Any]
) -> list[pb.SecretGrant]:
    """The secrets each module may receive: every `{ secret = "key" }` in its env, and what
    its granted capabilities need in its namespace (capability_config: the [database],
    [blobstore], [llm] sections, see ClusterConfig.capability_config)."""
    grants = {
        (module_key(m.namespace, m.name, m.version), m.namespace, value.secret)
        for m in modules
        for value in m.env.values()
        if isinstance(value, SecretRef)
    }
    grants |= {
        (module_key(m.namespace, m.name, m.version), m.namespace, key)
        for m in modules
        for capability in m.capabilities
        for key in capability_secret_keys(capability, capability_config)
    }
    return [pb.SecretGrant(module=k, namespace=ns, key=key) for k, ns, key in sorted(grants)]


def apply_plan(
    plan: Plan, report: Report, options: ApplyOptions | None = None
) -> list[TargetResult]:
    """Converge the cluster to plan.desired, `options.parallel` nodes at a time; returns one
    result per target. ApplyFailed (carrying every result) when a node failed."""
    work = _work(plan)
    targets = plan.targets
    results: list[TargetResult] = []
    with tempfile.TemporaryDirectory(prefix="wrctl-bundles-") as tmp:
        bundles: dict[str, Bundle] = {}
        managers: list[Bundle] = []
        if work.manager or work.nodes:  # drift alone needs no bundle
            report("bundles", f"building for {', '.join(['manager', *work.nodes])}")
            bundling = options_for_apply(targets, work.nodes)
            built = build_bundles(targets, Path(tmp), _version(plan), work.nodes, bundling)
            managers = [b for b in built if b.kind == "manager"]  # one per manager host
            bundles = {b.target: b for b in built if b.kind != "manager"}
            bundles["manager"] = managers[0]
        announce_restarts(plan, work.nodes, report)
        with open_session(targets, report, options) as session:
            run = _Apply(plan, session, work.certificate_only)
            if work.manager and not plan.live.reachable:
                run.deploy_managers(managers, work.managers)
            with session.locked("apply"):
                if work.manager:
                    if plan.live.reachable:  # each recorded once it passed its gate
                        run.deploy_managers(managers, work.managers, record=True)
                    else:
                        run.record_managers(bundles["manager"].digest)
                    results += [TargetResult(a, "applied") for a in work.managers]
                if work.nodes and not plan.live.reachable:
                    run.check_secrets(work.nodes, results)
                if work.databases:
                    manager_digest = (
                        bundles["manager"].digest
                        if work.manager
                        else plan.live.bundles.get("manager", "")
                    )
                    run.databases(work.databases, work.nodes, results, manager_digest)
                node_results = run.deploy_nodes(work.nodes, bundles)
                results.extend(node_results)
                failed = [r for r in node_results if r.status in ("failed", "rolled-back")]
                if failed:
                    raise ApplyFailed(
                        f"{failed[0].target}: {failed[0].detail.splitlines()[0]}", results
                    )
                for node in work.removed:
                    run.remove_node(node)
                    results.append(TargetResult(target_name(f"node.{node}"), "removed"))
                for address in work.removed_managers:  # once the nodes dial the others
                    run.remove_manager(address)
                    results.append(TargetResult(address, "removed"))
                converged = converge(plan, session)
                results.extend(converged)
                failed = [r for r in converged if r.status == "failed"]
                if failed:
                    raise ApplyFailed(f"{failed[0].target}: could not converge", results)
                results.extend(run.apply_schedules(work.schedules))
            mark_applied(targets, session.client.state().serial)
    return results


def _version(plan: Plan) -> str:
    manager = next(r for r in plan.desired.resources.values() if r.kind == MANAGER)
    return manager.attributes["runtime_version"]


# Where install.sh keeps the manager's secrets key (relative to the workdir; see install.sh.j2).
SECRETS_KEY_FILE = "manager/data/secrets.key"
SECRETS_ENV_FILE = "manager/data/secrets.env"


@dataclass
class _Apply:
    """One apply: the plan and the session it runs in."""

    plan: Plan
    session: Session
    certificate_only: frozenset[str] = frozenset()
    _shared_key: bytes = b""  # set while the 2nd.. of several managers are installed
    # What the manager's record holds: every manager resource and each host's bundle, as
    # recorded before this apply, updated host by host as each passes its gate or is removed.
    _managers: dict[str, Resource] = field(default_factory=dict)
    _manager_bundles: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        live = self.plan.live
        self._managers = {a: r for a, r in live.resources.items() if r.kind == MANAGER}
        self._manager_bundles = {a: live.bundles[a] for a in self._managers if a in live.bundles}

    def deploy_managers(
        self, bundles: list[Bundle], wanted: Sequence[str] = (), record: bool = False
    ) -> None:
        """Deploy the manager resources in `wanted` (default: all), bundles being one per
        manager host in cluster.toml's order. One manager: deploy_manager. Several
        ([manager] hosts): upgrade them one at a time, each gated on answering by itself, so
        the others serve meanwhile; a manager that fails its gate is switched back to its
        previous release and the apply stops (the managers after it are not touched). With
        `record` (under the apply lock) each is recorded as soon as it passed its gate."""
        manager = self.plan.targets.manager
        if len(bundles) == 1:
            self.deploy_manager(bundles[0])
            self._deployed(MANAGER, bundles[0], record)
            return
        for place, address, bundle in zip(
            manager.places, manager.node_endpoints, bundles, strict=True
        ):
            resource = address_of(place.host)
            if wanted and resource not in wanted:
                continue
            if not self._shared_key:
                # Managers sharing a database must share the secrets key: each decrypts
                # what any other encrypted. The first one (a new cluster's) makes it.
                self._shared_key = self._shared_secrets_key(resource)
            try:
                self.deploy_manager(bundle, place, address)
            except ManagerUnreachable:
                if record:
                    self.session.record_failure(self._manager_record(bundle.digest, resource))
                raise
            self._deployed(resource, bundle, record)

    def _deployed(self, address: str, bundle: Bundle, record: bool) -> None:
        self._managers[address] = self.plan.desired.resources[address]
        self._manager_bundles[address] = bundle.digest
        if record:
            self.record_managers(bundle.digest, address)

    def _shared_secrets_key(self, address: str) -> bytes:
        """The secrets key of a manager host other than `address` that has it: one recorded
        or deployed by now (declared ones first, then one being removed; the next one when a
        host cannot be read); b"" when `address` is the cluster's first manager."""
        places = {address_of(p.host): p for p in self.plan.targets.manager.places}
        have = [a for a in self._managers if a != address and host_of(a)]
        have.sort(key=lambda a: list(places).index(a) if a in places else len(places))
        problems = []
        for source in have:
            place = places.get(source) or self.plan.targets.recorded(
                source, self._managers[source].attributes
            )
            try:
                return self._read_secrets_key(place)
            except WrctlError as exc:
                problems.append(str(exc))
        if problems:
            raise WrctlError(
                f"{address}: cannot read the managers' secrets key from any running one: "
                + "; ".join(problems)
            )
        return b""

    def record_managers(self, digest: str, address: str = MANAGER) -> None:
        """The manager's one release record: every manager resource it now has."""
        self.session.record(self._manager_record(digest, address, "applied"))

    def _manager_record(self, digest: str, address: str, status: str = "") -> pb.ReleaseRecord:
        resources = [self._managers[a] for a in sorted(self._managers)]
        attributes = encode_resources(resources) if resources else {}
        if any(host_of(a) for a in self._managers):
            attributes[MANAGER_BUNDLES] = json.dumps(self._manager_bundles, sort_keys=True)
        return pb.ReleaseRecord(
            target=MANAGER,
            bundle_digest=digest,
            runtime_version=_version(self.plan),
            status=status,
            attributes=attributes,
            message="" if status == "applied" else f"{address}: failed its health gate",
            previous_bundle_digest=self.plan.live.bundles.get(address, ""),
        )

    def remove_manager(self, address: str) -> None:
        """Stop and remove a manager host no longer declared, found where it was recorded,
        and drop it from the manager's record (as a removed node's record is dropped)."""
        place = self.plan.targets.recorded(address, self._managers[address].attributes)
        remove_at(place)
        del self._managers[address]
        self._manager_bundles.pop(address, None)
        digest = next(iter(self._manager_bundles.values()), "") or self.plan.live.bundles.get(
            MANAGER, ""
        )
        self.record_managers(digest, address)
        self.session.report(address, "removed")

    def _read_secrets_key(self, place: HostTarget) -> bytes:
        """The secrets key install.sh made on the first manager's host. Managers sharing a
        database must share it: each decrypts what any other encrypted."""
        rollout = self.session.open(place)
        try:
            path = rollout.host.path("manager", "data", "secrets.key")
            root = rollout.host.format.install_as_root
            result = rollout.host.transport.run(f"cat {quote(path)}", sudo=root)
        finally:
            rollout.host.transport.close()
        key = result.stdout.strip()
        if not key:
            raise WrctlError(f"manager {place.host}: {path} is empty; cannot share the key")
        return key.encode()

    def deploy_manager(
        self, bundle: Bundle, place: HostTarget | None = None, address: str = ""
    ) -> None:
        """Install a manager's bundle and its TLS files (every format, local too), restart
        it and wait until it answers wrctl's operator certificate. With `address` (one of
        several managers) the gate dials that manager alone, and a failed gate switches the
        host back to the release it ran before."""
        session, targets = self.session, self.plan.targets
        place = place or targets.manager.place
        ca = cluster_ca(targets.config.source, targets.config.cluster.name)
        credentials = ca.manager_credentials([place.wire_host, "127.0.0.1"])
        label = f"manager {address}" if address else "manager"
        rollout = session.open(place)
        try:
            previous = self.install(rollout, bundle, credentials)
            rollout.restart()
            session.report(label, "started; waiting for it to answer")
            try:
                self._manager_gate(address)
            except ManagerUnreachable as exc:
                logs = rollout.log_tail(50).rstrip()
                if address and previous is not None:
                    rollout.switch(previous)
                    rollout.restart()
                    session.report(label, f"rolled back to release {previous[:12]}")
                    raise ManagerUnreachable(
                        f"{label}: {exc}; switched back to release {previous[:12]}, the"
                        f" managers after it were not upgraded; its last log lines:\n{logs}"
                    ) from None
                raise ManagerUnreachable(f"{exc}; its last log lines:\n{logs}") from None
        finally:
            rollout.host.transport.close()

    def _manager_gate(self, address: str) -> None:
        session = self.session
        if not address:
            session.client.wait_ready(session.options.health_timeout_s)
            return
        one = ManagerClient(address, session.client.credentials, timeout=5.0)
        try:
            one.wait_ready(session.options.health_timeout_s)
            one.routing_version()  # answers from the store, not just a TLS handshake
        finally:
            one.close()

    def databases(
        self,
        namespaces: frozenset[str],
        nodes: list[str],
        results: list[TargetResult],
        manager_digest: str,
    ) -> None:
        """Roles, schemas and migrations (wrctl/deploy/database.py). A failure ends the apply
        here, with no node touched, and is kept in the manager's history."""
        session = self.session
        try:
            provision_and_migrate(self.plan.config, session.client, session.report, set(namespaces))
        except WrctlError as exc:
            message = str(exc)
            results.append(TargetResult("database", "failed", message))
            results += [
                TargetResult(
                    target_name(f"node.{n}"), "skipped", "not started: the database step failed"
                )
                for n in nodes
            ]
            if manager_digest:  # kept in the manager's history: the step is the manager's side
                session.record_failure(
                    pb.ReleaseRecord(
                        target="manager",
                        bundle_digest=manager_digest,
                        runtime_version=_version(self.plan),
                        message=f"database step: {message}"[:2000],
                        previous_bundle_digest=manager_digest,
                    )
                )
            raise ApplyFailed(f"database: {message.splitlines()[0]}", results) from None
        for namespace in sorted(namespaces):
            results.append(TargetResult(f"database.{namespace}", "applied"))

    def check_secrets(self, nodes: list[str], results: list[TargetResult]) -> None:
        """On a first apply the plan could not ask the manager for the secrets the modules
        need; now that it answers, ask, and stop before any node moves if one is missing
        (its engines could not register: the node would only fail its health gate)."""
        held = frozenset(f"{e.namespace}/{e.key}" for e in self.session.client.secrets())
        try:
            check_secrets(self.plan.config, self.plan.desired, held)
        except ConfigError as exc:
            results += [
                TargetResult(target_name(f"node.{n}"), "skipped", "not started: secrets missing")
                for n in nodes
            ]
            raise ApplyFailed(
                "the manager is up, but secrets are missing:\n" + "\n".join(exc.problems),
                results,
            ) from None

    def apply_schedules(self, actions: Iterable[Action]) -> list[TargetResult]:
        """Upsert the created and changed schedules, delete the removed ones (after the nodes,
        so a new schedule's first fire finds its module deployed)."""
        wanted = {s.address: s for s in self.plan.config.schedule}
        client, report = self.session.client, self.session.report
        results = []
        for action in actions:
            if action.kind is ActionKind.DESTROY:
                client.delete_schedule(action.address.removeprefix(f"{schedules.KIND}."))
                results.append(TargetResult(action.address, "removed"))
            else:
                client.upsert_schedule(schedules.upsert_request(wanted[action.address]))
                results.append(TargetResult(action.address, "applied"))
            report(action.address, "removed" if action.kind is ActionKind.DESTROY else "set")
        return results

    def install(
        self, rollout: Rollout, bundle: Bundle, credentials: NodeCredentials | None = None
    ) -> str | None:
        """Preflight, upload (unless there), verify, unpack, install, switch `current`;
        returns the release that was current before."""
        report = self.session.report
        check_and_prepare(rollout.host, bundle.path)
        previous = rollout.current_release()
        bar = self.session.options.upload_bar
        uploaded = rollout.upload(
            bundle, bar(rollout.target, bundle.path.stat().st_size) if bar else None
        )
        report(
            rollout.target,
            f"bundle {bundle.digest[:19]} " + ("uploaded" if uploaded else "already on host"),
        )
        rollout.put_host_secrets(self.host_secrets(rollout.target))
        release = rollout.unpack_and_install(bundle, self.plan.config.bundle.trusted_keys)
        if credentials is not None and rollout.put_credentials(credentials.files()):
            report(rollout.target, "TLS certificate installed")
        rollout.switch(release)
        report(rollout.target, f"switched to release {release[:12]}")
        return previous

    def host_secrets(self, target: str) -> dict[str, bytes]:
        """The files install.sh expects on the host, never in the bundle (path relative to
        the workdir -> content): the password of the manager's PostgreSQL state DSN."""
        _, password = split_state_password(self.plan.config.manager.state)
        if target != "manager":
            return {}
        files = {} if password is None else {STATE_PASSWORD.file: state_password_file(password)}
        if self._shared_key:  # the other managers of [manager] hosts: the first one's key
            files[SECRETS_KEY_FILE] = self._shared_key + b"\n"
            files[SECRETS_ENV_FILE] = b"WR_SECRETS_KEY=" + self._shared_key + b"\n"
        return files

    def deploy_nodes(self, nodes: list[str], bundles: dict[str, Bundle]) -> list[TargetResult]:
        """Roll nodes out `parallel` at a time, in order. After the first failure no new node
        starts (those in flight finish, rolling back if they must); the rest stay untouched."""
        targets = self.plan.targets
        ca = cluster_ca(targets.config.source, targets.config.cluster.name)
        credentials = {n: ca.node_credentials(n, targets.node(n).place.wire_host) for n in nodes}

        def one(name: str) -> TargetResult:
            node = targets.node(name)
            if name in self.certificate_only:
                return self.renew_certificate(node, bundles[node.place.name], credentials[name])
            return self.deploy_node(node, bundles[node.place.name], credentials[name])

        results: dict[str, TargetResult] = {}
        pending = list(nodes)
        parallel = self.session.options.parallel
        if parallel <= 1:  # in the caller's thread, so Ctrl-C stops the step it is in
            while pending and all(r.status == "applied" for r in results.values()):
                node = pending.pop(0)
                results[node] = one(node)
        else:
            self._in_parallel(one, pending, results)
        failed = next((n for n in nodes if n in results and results[n].status != "applied"), "")
        for node in pending:
            results[node] = TargetResult(
                target_name(f"node.{node}"),
                "skipped",
                f"not started: {target_name(f'node.{failed}')} failed",
            )
        return [results[n] for n in nodes if n in results]

    def _in_parallel(
        self,
        one: Callable[[str], TargetResult],
        pending: list[str],
        results: dict[str, TargetResult],
    ) -> None:
        parallel = self.session.options.parallel
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
                self.session.cancel.set()  # Ctrl-C: nodes in flight stop at their next wait
                raise

    def deploy_node(
        self, node: NodeTarget, bundle: Bundle, credentials: NodeCredentials
    ) -> TargetResult:
        """Roll one node onto its new bundle; a failure after the switch returns it to the
        release it ran before. Every failed attempt is recorded in the manager's history."""
        target = node.place.name
        try:
            rollout = self.session.open(node.place)
        except WrctlError as exc:
            self.record_failure(node.name, bundle, str(exc))
            return TargetResult(target, "failed", str(exc))
        try:
            try:
                self.record_pending(node, bundle)
                previous = self.install(rollout, bundle, credentials)
            except WrctlError as exc:
                self.record_failure(node.name, bundle, str(exc))
                return TargetResult(target, "failed", str(exc))
            return self._gate(node, rollout, bundle, previous, credentials)
        finally:
            rollout.host.transport.close()

    def renew_certificate(
        self, node: NodeTarget, bundle: Bundle, credentials: NodeCredentials
    ) -> TargetResult:
        """Only the node's certificate changed: put the new files in place and record it; no
        restart, no traffic dropped. The proxy reloads the files itself; running engines keep
        the certificate they loaded (same identity, still valid) until their next restart."""
        target = node.place.name
        try:
            rollout = self.session.open(node.place)
            try:
                rollout.put_credentials(credentials.files())
            finally:
                rollout.host.transport.close()
        except WrctlError as exc:
            self.record_failure(node.name, bundle, str(exc))
            return TargetResult(target, "failed", str(exc))
        self.session.report(target, f"TLS certificate {credentials.fingerprint[:19]} installed")
        live = self.plan.live.bundles.get(node.name, "")
        self.record(node.name, bundle, self._placed(node, credentials), bundle_digest=live)
        return TargetResult(target, "applied", "certificate renewed")

    def record_pending(self, node: NodeTarget, bundle: Bundle) -> None:
        """Tell the manager what this node is about to run (under the lock), so it lets the
        new engines register those modules and receive their secrets."""
        self.session.record(
            pb.ReleaseRecord(
                target=node.name,
                bundle_digest=bundle.digest,
                module_digests=bundle.module_digests,
                runtime_version=_version(self.plan),
                status="pending",
                secret_grants=secret_grants(node.modules, self.plan.config.capability_config()),
                previous_bundle_digest=self.plan.live.bundles.get(node.name, ""),
            )
        )

    def _placed(self, node: NodeTarget, credentials: NodeCredentials) -> list[Resource]:
        """The node's resource (with the fingerprint of the certificate it now has) and the
        modules placed on it, as its release record keeps them."""
        desired = self.plan.desired.resources
        own = desired[node.place.address]
        own = replace(own, attributes={**own.attributes, TLS_ATTRIBUTE: credentials.fingerprint})
        modules = [r for r in desired.values() if r.kind == "module" and node.name in r.targets]
        return [own, *modules]

    def _gate(
        self,
        node: NodeTarget,
        rollout: Rollout,
        bundle: Bundle,
        previous: str | None,
        credentials: NodeCredentials,
    ) -> TargetResult:
        """Restart behind the health gate; on failure go back to `previous`."""
        plan, target = self.plan, node.place.name
        gate = self.session.gate(rollout, node)
        recorded = plan.live.resources.get(node.place.address)
        try:
            detail = gate.restart_and_wait(Expectation(node.engines, bundle.module_digests))
        except WrctlError as exc:
            logs = rollout.log_tail(50)
            engines = int(recorded.attributes.get("engines", "1")) if recorded else node.engines
            old = Expectation(engines, _recorded_digests(plan, node.name))
            back = gate.return_to(previous, old if recorded else None)
            self.record_failure(node.name, bundle, f"{exc}; {back}")
            return TargetResult(target, "rolled-back", f"{exc}\n{back}", logs)
        self.session.report(target, f"healthy: {detail}")
        self.record(node.name, bundle, self._placed(node, credentials))
        for pruned in rollout.prune():
            self.session.report(target, f"pruned old release {pruned[:12]}")
        return TargetResult(target, "applied")

    def remove_node(self, node: str) -> None:
        remove_recorded_node(self.session, self.plan, node)

    def record(
        self, target: str, bundle: Bundle, resources: list[Resource], bundle_digest: str = ""
    ) -> None:
        self.session.record(
            pb.ReleaseRecord(
                target=target,
                bundle_digest=bundle_digest or bundle.digest,
                module_digests=bundle.module_digests,
                runtime_version=resources[0].attributes.get("runtime_version", ""),
                status="applied",
                attributes=encode_resources(resources),
                previous_bundle_digest=self.plan.live.bundles.get(target, ""),
                secret_grants=self._grants(target),
            )
        )

    def record_failure(self, node: str, bundle: Bundle, message: str) -> None:
        self.session.record_failure(
            pb.ReleaseRecord(
                target=node,
                bundle_digest=bundle.digest,
                module_digests=bundle.module_digests,
                runtime_version=_version(self.plan),
                message=message[:2000],
                previous_bundle_digest=self.plan.live.bundles.get(node, ""),
                secret_grants=self._grants(node),
            )
        )

    def _grants(self, target: str) -> list[pb.SecretGrant]:
        if target == "manager":
            return []
        return secret_grants(
            self.plan.targets.node(target).modules, self.plan.config.capability_config()
        )


def _recorded_digests(plan: Plan, node: str) -> dict[str, str]:
    """Module key -> component digest of what the node's last recorded release runs."""
    digests = {}
    for r in plan.live.resources.values():
        if r.kind == "module" and node in r.targets:
            namespace, name = r.address.removeprefix("module.").split(".", 1)
            digests[module_key(namespace, name, r.attributes["version"])] = r.attributes[
                "component"
            ]
    return digests

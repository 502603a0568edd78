"""wrctl's planner: resolve desired state, diff it against the live state its caller observed,
render, save. No network I/O here: `wrctl.observe` fetches the live state.

load -> resolve (desired, pure) -> [caller: observe (live, I/O)] -> diff (pure) -> render | save
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from runtime.engine.capabilities import DB_PASSWORD_SECRET, REGISTRY, secret_keys
from runtime.version import __version__ as RUNTIME_VERSION
from wrctl.config import ClusterConfig, Targets
from wrctl.errors import ConfigError
from wrctl.plan import database, managers
from wrctl.plan.desired import resolve
from wrctl.plan.diff import Action, ActionKind, diff, summary
from wrctl.plan.drift import Drift, DriftKind
from wrctl.plan.live import nothing_yet
from wrctl.plan.planfile import SavedPlan
from wrctl.plan.render import render_json, render_text, summary_line
from wrctl.plan.state import ClusterState, Resource

__all__ = [
    "Action",
    "ActionKind",
    "ClusterState",
    "Drift",
    "DriftKind",
    "Plan",
    "Resource",
    "diff",
    "make_plan",
    "nothing_yet",
    "render_json",
    "render_text",
    "resolve",
    "summary",
    "summary_line",
]


@dataclass(frozen=True)
class Plan:
    targets: Targets
    desired: ClusterState
    live: ClusterState
    actions: list[Action]
    config_digest: str
    drift: tuple[Drift, ...] = ()

    @property
    def config(self) -> ClusterConfig:
        return self.targets.config

    @property
    def changes(self) -> bool:
        """Whether apply has anything to do: an action, or drift to converge."""
        return bool(self.actions or self.drift)

    def saved(self) -> SavedPlan:
        return SavedPlan(
            cluster=self.config.cluster.name,
            config_path=str(self.config.source),
            config_digest=self.config_digest,
            serial=self.live.serial,
            manager_reachable=self.live.reachable,
            drift=tuple(d.address for d in self.drift),
        )


def config_digest(config: ClusterConfig, desired: ClusterState) -> str:
    """Digest of cluster.toml and of every file it names (through their digests)."""
    h = hashlib.sha256(config.source.read_bytes())
    for address in sorted(desired.resources):
        h.update(json.dumps(desired.resources[address].to_json(), sort_keys=True).encode())
    return f"sha256:{h.hexdigest()}"


def make_plan(targets: Targets, live: ClusterState, runtime_version: str = RUNTIME_VERSION) -> Plan:
    """The plan that turns `live` (observed by the caller) into what cluster.toml asks for."""
    desired = resolve(targets, runtime_version)
    live = managers.align(desired, live)
    if live.reachable:
        check_secrets(targets.config, desired, live.secrets)
    problems = database.migration_problems(desired, live)
    if problems:
        raise ConfigError(problems)
    actions = database.with_reasons(diff(desired, live))
    if managers.several(desired):
        hosts = [p.host for p in targets.manager.places]
        advertised = dict(
            zip(map(managers.address_of, hosts), targets.manager.node_endpoints, strict=True)
        )
        actions = managers.not_running(desired, live, actions, advertised)
        actions = managers.in_host_order(actions, hosts)
    drift = _relevant_drift(desired, live)
    return Plan(targets, desired, live, actions, config_digest(targets.config, desired), drift)


def _relevant_drift(desired: ClusterState, live: ClusterState) -> tuple[Drift, ...]:
    """The live state's drift, less restarts of nodes that the configuration removes (their
    destroy action takes them down anyway)."""
    return tuple(
        d for d in live.drift if d.converge != "restart" or f"node.{d.node}" in desired.resources
    )


def check_secrets(config: ClusterConfig, desired: ClusterState, held: frozenset[str]) -> None:
    """ConfigError naming every secret the modules need that the manager does not hold
    (held: "namespace/key"). Plan checks when it can see the manager; a first apply checks
    once the manager it started answers, before any node moves."""
    live = ClusterState(resources={}, secrets=held)
    _check_secrets(desired, live)
    _check_capability_secrets(config, live)


def _check_capability_secrets(config: ClusterConfig, live: ClusterState) -> None:
    """The secrets a module's granted capabilities need in its namespace (an API key, S3
    credentials) must exist too; the database role's password is apply's to make."""
    sections = config.capability_config()
    missing = []
    for mod in config.module:
        for capability in mod.capabilities:
            for key in secret_keys(capability, sections):
                if key != DB_PASSWORD_SECRET and f"{mod.namespace}/{key}" not in live.secrets:
                    section = REGISTRY[capability].section
                    missing.append(
                        f"{mod.address}: capability {capability!r} needs secret "
                        f"{mod.namespace}/{key} ([{section}]), which the manager does not hold "
                        f"(store it first: wrctl secrets set {mod.namespace} {key} < value-file)"
                    )
    if missing:
        raise ConfigError(sorted(set(missing)))


def _check_secrets(desired: ClusterState, live: ClusterState) -> None:
    """Every secret a module's env references must exist in the manager: an engine asking for
    a missing one cannot register, so the apply would only fail later at the health gate."""
    missing = []
    for resource in desired.resources.values():
        namespace = resource.address.split(".")[1] if resource.kind == "module" else ""
        for attribute, value in sorted(resource.attributes.items()):
            if attribute.startswith("env.") and value.startswith("(secret "):
                key = value.removeprefix("(secret ").removesuffix(")")
                if f"{namespace}/{key}" not in live.secrets:
                    missing.append(
                        f"{resource.address}: {attribute} references secret {namespace}/{key}, "
                        "which the manager does not hold (store it first: "
                        f"wrctl secrets set {namespace} {key} < value-file)"
                    )
    if missing:
        raise ConfigError(missing)

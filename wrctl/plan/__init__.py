"""wrctl's planning pipeline: resolve desired state, observe live state, diff, render, save.

load -> resolve (desired, pure) -> observe (live, I/O) -> diff (pure) -> render | save
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from runtime.version import __version__ as RUNTIME_VERSION
from wrctl.config import ClusterConfig
from wrctl.errors import ConfigError, ManagerUnreachable
from wrctl.fsutil import write_atomic
from wrctl.plan.desired import resolve
from wrctl.plan.diff import Action, ActionKind, diff, summary
from wrctl.plan.live import nothing_yet, observe
from wrctl.plan.planfile import SavedPlan
from wrctl.plan.render import render_json, render_text, summary_line
from wrctl.plan.state import ClusterState, Resource

__all__ = [
    "Action",
    "ActionKind",
    "ClusterState",
    "Plan",
    "Resource",
    "diff",
    "make_plan",
    "manager_address",
    "render_json",
    "render_text",
    "resolve",
    "summary",
    "summary_line",
]


@dataclass(frozen=True)
class Plan:
    config: ClusterConfig
    desired: ClusterState
    live: ClusterState
    actions: list[Action]
    config_digest: str

    def saved(self) -> SavedPlan:
        return SavedPlan(
            cluster=self.config.cluster.name,
            config_path=str(self.config.source),
            config_digest=self.config_digest,
            serial=self.live.serial,
            manager_reachable=self.live.reachable,
            actions=self.actions,
            desired=list(self.desired.resources.values()),
        )


def manager_address(config: ClusterConfig) -> str:
    """host:port wrctl uses for the manager (WR_MANAGER overrides)."""
    override = os.environ.get("WR_MANAGER")
    if override:
        return override.removeprefix("http://")
    host = "127.0.0.1" if config.manager.host == "local" else config.manager.host
    return f"{host}:{config.manager.port}"


def config_digest(config: ClusterConfig, desired: ClusterState) -> str:
    """Digest of cluster.toml and of every file it names (through their digests)."""
    h = hashlib.sha256(config.source.read_bytes())
    for address in sorted(desired.resources):
        h.update(json.dumps(desired.resources[address].to_json(), sort_keys=True).encode())
    return f"sha256:{h.hexdigest()}"


def _marker(config: ClusterConfig) -> Path:
    return config.source.parent / ".wrctl" / f"{config.cluster.name}.applied"


def mark_applied(config: ClusterConfig, serial: int) -> None:
    """Remember that this cluster has a manager, so a later unreachable manager is an error."""
    write_atomic(_marker(config), f"{manager_address(config)} serial={serial}\n".encode())


def forget_applied(config: ClusterConfig) -> None:
    _marker(config).unlink(missing_ok=True)


def observe_live(config: ClusterConfig, timeout: float = 5.0) -> ClusterState:
    """Live state; an unreachable manager means "nothing yet" only before the first apply."""
    try:
        return observe(manager_address(config), timeout)
    except ManagerUnreachable as exc:
        if _marker(config).exists():
            raise ManagerUnreachable(
                f"{exc}; this cluster was applied before ({_marker(config)}), so its live "
                "state cannot be assumed empty"
            ) from None
        return nothing_yet()


def make_plan(
    config: ClusterConfig, live: ClusterState | None = None, runtime_version: str = RUNTIME_VERSION
) -> Plan:
    desired = resolve(config, runtime_version)
    live = observe_live(config) if live is None else live
    if live.reachable:
        _check_secrets(desired, live)
    actions = diff(desired, live)
    return Plan(config, desired, live, actions, config_digest(config, desired))


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
                        "which the manager does not hold (store it with the manager's SetSecret "
                        "RPC first)"
                    )
    if missing:
        raise ConfigError(missing)

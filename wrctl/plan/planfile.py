"""Saved plans (`wrctl plan -out FILE`): the actions plus what they were computed against."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from wrctl.errors import WrctlError
from wrctl.fsutil import write_atomic
from wrctl.plan.diff import Action, ActionKind, Change
from wrctl.plan.state import Resource

FORMAT_VERSION = 1
MAGIC = "wrctl-plan"


@dataclass(frozen=True)
class SavedPlan:
    cluster: str
    config_path: str
    config_digest: str  # sha256 of cluster.toml and every file it names
    serial: int  # the manager's state serial the plan saw (0 when unreachable)
    manager_reachable: bool
    actions: list[Action]
    desired: list[Resource]


def save(plan: SavedPlan, path: str | Path) -> None:
    data = {
        "kind": MAGIC,
        "format_version": FORMAT_VERSION,
        "cluster": plan.cluster,
        "config_path": plan.config_path,
        "config_digest": plan.config_digest,
        "serial": plan.serial,
        "manager_reachable": plan.manager_reachable,
        "actions": [a.to_json() for a in plan.actions],
        "desired": [r.to_json() for r in plan.desired],
    }
    write_atomic(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode(), 0o600)


def load(path: str | Path) -> SavedPlan:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WrctlError(f"{path}: not a readable plan file ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != MAGIC:
        raise WrctlError(f"{path}: not a wrctl plan file")
    if data.get("format_version") != FORMAT_VERSION:
        raise WrctlError(
            f"{path}: plan file format {data.get('format_version')} is not supported "
            f"(this wrctl reads format {FORMAT_VERSION}); run wrctl plan again"
        )
    return SavedPlan(
        cluster=data["cluster"],
        config_path=data["config_path"],
        config_digest=data["config_digest"],
        serial=int(data["serial"]),
        manager_reachable=bool(data["manager_reachable"]),
        actions=[_action(a) for a in data["actions"]],
        desired=[Resource.from_json(r) for r in data["desired"]],
    )


def _action(data: dict[str, object]) -> Action:
    changes = data["changes"]
    targets = data["targets"]
    assert isinstance(changes, list) and isinstance(targets, list)
    return Action(
        address=str(data["address"]),
        kind=ActionKind(str(data["action"])),
        resource_kind=str(data["resource_kind"]),
        changes=tuple(
            Change(c["attribute"], c["old"], c["new"], bool(c["forces_replacement"]))
            for c in changes
        ),
        unchanged=int(str(data["unchanged_attributes"])),
        targets=tuple(str(t) for t in targets),
        reason=str(data.get("reason", "")),
    )

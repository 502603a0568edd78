"""Saved plans (`wrctl plan -out FILE`): what a plan was computed against, and the rule that
`wrctl apply FILE` refuses one whose inputs or live state moved since."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wrctl.errors import StalePlanError, WrctlError
from wrctl.fsutil import write_atomic

if TYPE_CHECKING:
    from wrctl.plan import Plan

# 2: the actions and desired resources are no longer written (apply re-plans and checks the
# digests below); files of format 1 still load.
# 3: the addresses of the drift the plan showed (apply converges no drift it did not show).
FORMAT_VERSION = 3
READS = (1, 2, 3)
MAGIC = "wrctl-plan"


@dataclass(frozen=True)
class SavedPlan:
    cluster: str
    config_path: str
    config_digest: str  # sha256 of cluster.toml and every file it names
    serial: int  # the manager's state serial the plan saw (0 when unreachable)
    manager_reachable: bool
    drift: tuple[str, ...] = ()  # addresses of the drift items the plan showed

    def check_current(self, path: str | Path, plan: Plan) -> None:
        """StalePlanError unless `plan`, made now, was made from the same inputs against the
        same live state as this saved one."""
        if plan.config_digest != self.config_digest:
            raise StalePlanError(
                f"{path}: {self.config_path} or a file it names changed since this plan was "
                "made; run wrctl plan again"
            )
        if plan.live.serial != self.serial or plan.live.reachable != self.manager_reachable:
            raise StalePlanError(
                f"{path}: the live cluster changed since this plan was made (state serial "
                f"{self.serial} -> {plan.live.serial}); run wrctl plan again"
            )
        # Drift the plan showed that is gone by now settled by itself (nothing left to do);
        # drift it did not show would be converged unreviewed, so then the plan is stale.
        unseen = [d.address for d in plan.drift if d.address not in self.drift]
        if unseen:
            raise StalePlanError(
                f"{path}: the live cluster changed since this plan was made ({', '.join(unseen)} "
                "drifted since); run wrctl plan again"
            )


def is_plan_file(path: Path) -> bool:
    """A saved plan is JSON naming itself; cluster.toml never starts with `{`."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and MAGIC.encode() in head


def save(plan: SavedPlan, path: str | Path) -> None:
    data = {
        "kind": MAGIC,
        "format_version": FORMAT_VERSION,
        "cluster": plan.cluster,
        "config_path": plan.config_path,
        "config_digest": plan.config_digest,
        "serial": plan.serial,
        "manager_reachable": plan.manager_reachable,
        "drift": list(plan.drift),
    }
    write_atomic(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode(), 0o600)


def load(path: str | Path) -> SavedPlan:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise WrctlError(f"{path}: not a readable plan file ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != MAGIC:
        raise WrctlError(f"{path}: not a wrctl plan file")
    if data.get("format_version") not in READS:
        raise WrctlError(
            f"{path}: plan file format {data.get('format_version')} is not supported "
            f"(this wrctl reads formats {', '.join(map(str, READS))}); run wrctl plan again"
        )
    drift = data.get("drift", [])  # formats 1 and 2 carry none
    if not isinstance(drift, list):
        raise WrctlError(f"{path}: plan file has a bad drift list (expected a list of addresses)")
    try:
        return SavedPlan(
            cluster=str(data["cluster"]),
            config_path=str(data["config_path"]),
            config_digest=str(data["config_digest"]),
            serial=int(data["serial"]),
            manager_reachable=bool(data["manager_reachable"]),
            drift=tuple(str(a) for a in drift),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise WrctlError(f"{path}: plan file is missing or has a bad {exc}") from None

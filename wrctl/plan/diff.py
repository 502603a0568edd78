"""The planner: diff(desired, live) -> ordered actions with attribute-level reasons [pure]."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from wrctl.plan.state import ClusterState, Resource

# the database before the nodes, as apply runs it: modules may need their tables; schedules
# after the modules they fire
_ORDER = {"manager": 0, "database": 1, "migration": 2, "node": 3, "module": 4, "schedule": 5}


class ActionKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    DESTROY = "destroy"


@dataclass(frozen=True)
class Change:
    """One attribute that differs; old is None for a new attribute, new None for a dropped one."""

    attribute: str
    old: str | None
    new: str | None
    forces_replacement: bool = False


@dataclass(frozen=True)
class Action:
    address: str
    kind: ActionKind
    resource_kind: str
    changes: tuple[Change, ...]
    unchanged: int
    targets: tuple[str, ...]
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "address": self.address,
            "action": self.kind.value,
            "resource_kind": self.resource_kind,
            "reason": self.reason,
            "targets": list(self.targets),
            "changes": [
                {
                    "attribute": c.attribute,
                    "old": _public(c.attribute, c.old),
                    "new": _public(c.attribute, c.new),
                    "forces_replacement": c.forces_replacement,
                }
                for c in self.changes
            ],
            "unchanged_attributes": self.unchanged,
        }


def diff(desired: ClusterState, live: ClusterState) -> list[Action]:
    """Actions that turn live into desired: creates/updates/replaces manager first, then nodes,
    then modules, then schedules; destroys last, schedules first, modules before the nodes
    they run on. (Live state that
    drifted from the recorded release is not an action: see wrctl.plan.drift.)"""
    actions: list[Action] = []
    for address in sorted(desired.resources, key=lambda a: _sort_key(desired.resources[a])):
        want = desired.resources[address]
        have = live.resources.get(address)
        if have is None:
            changes = tuple(Change(k, None, v) for k, v in sorted(want.attributes.items()))
            actions.append(Action(address, ActionKind.CREATE, want.kind, changes, 0, want.targets))
            continue
        action = _compare(want, have)
        if action:
            actions.append(action)
    gone = [a for a in live.resources if a not in desired.resources]
    for address in sorted(gone, key=lambda a: _sort_key(live.resources[a]), reverse=True):
        have = live.resources[address]
        changes = tuple(Change(k, v, None) for k, v in sorted(have.attributes.items()))
        actions.append(Action(address, ActionKind.DESTROY, have.kind, changes, 0, have.targets))
    return actions


def _sort_key(resource: Resource) -> tuple[int, str]:
    return (_ORDER.get(resource.kind, 9), resource.address)


def _compare(want: Resource, have: Resource) -> Action | None:
    keys = sorted(set(want.attributes) | set(have.attributes))
    changes = tuple(
        Change(k, have.attributes.get(k), want.attributes.get(k), k in want.replace_on)
        for k in keys
        if want.attributes.get(k) != have.attributes.get(k)
    )
    if not changes:
        return None
    kind = ActionKind.REPLACE if any(c.forces_replacement for c in changes) else ActionKind.UPDATE
    targets = tuple(sorted(set(want.targets) | set(have.targets)))
    unchanged = len(keys) - len(changes)
    return Action(want.address, kind, want.kind, changes, unchanged, targets)


def summary(actions: list[Action]) -> tuple[int, int, int]:
    """(to add, to change, to destroy); a replacement counts as one add and one destroy."""
    add = sum(a.kind in (ActionKind.CREATE, ActionKind.REPLACE) for a in actions)
    change = sum(a.kind is ActionKind.UPDATE for a in actions)
    destroy = sum(a.kind in (ActionKind.DESTROY, ActionKind.REPLACE) for a in actions)
    return add, change, destroy


def _public(attribute: str, value: str | None) -> str | None:
    """Values of sensitive attributes (digests of URLs with passwords) are not shown."""
    return "(sensitive value)" if value is not None and attribute == "state_digest" else value

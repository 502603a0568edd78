"""Resources as the planner sees them: an address, flat string attributes, and how each
attribute's change is applied (in place, or by replacing the resource)."""

from __future__ import annotations

from dataclasses import dataclass, field

from wrctl.plan.drift import Drift


@dataclass(frozen=True)
class Resource:
    """One thing wrctl manages: `manager` (`manager.HOST` each, with several), `node.NAME`,
    `module.NS.NAME`, ...

    `attributes` are flat strings so that diffing and saving are trivial; `replace_on` names
    the attributes whose change needs a replacement rather than an in-place update; `target`
    is what must be redeployed when it changes (`manager` or the node names it is placed on).
    """

    address: str
    kind: str
    attributes: dict[str, str]
    replace_on: frozenset[str] = frozenset()
    targets: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {
            "address": self.address,
            "kind": self.kind,
            "attributes": dict(sorted(self.attributes.items())),
            "replace_on": sorted(self.replace_on),
            "targets": list(self.targets),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Resource:
        attributes = data["attributes"]
        replace_on = data.get("replace_on", [])
        targets = data.get("targets", [])
        assert isinstance(attributes, dict) and isinstance(replace_on, list)
        assert isinstance(targets, list)
        return cls(
            address=str(data["address"]),
            kind=str(data["kind"]),
            attributes={str(k): str(v) for k, v in attributes.items()},
            replace_on=frozenset(str(x) for x in replace_on),
            targets=tuple(str(x) for x in targets),
        )


@dataclass(frozen=True)
class ClusterState:
    """Resources keyed by address. Desired state has no drift and serial 0; live state
    carries what the manager recorded at the last apply, where the live cluster drifted from
    it, and the serial that a saved plan pins."""

    resources: dict[str, Resource]
    serial: int = 0
    reachable: bool = True
    secrets: frozenset[str] = frozenset()  # "namespace/key" of every secret the manager holds
    bundles: dict[str, str] = field(default_factory=dict)  # target -> recorded bundle digest
    cluster: str = ""  # the cluster the manager says it serves ("" when it does not say)
    drift: tuple[Drift, ...] = ()  # where the live cluster differs from the recorded releases
    # host:port of every manager with a live heartbeat row (ListManagers); None: not asked,
    # or a manager from before ListManagers
    managers_up: frozenset[str] | None = None

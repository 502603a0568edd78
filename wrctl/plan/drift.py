"""Drift: live state that differs from what wrctl apply recorded (Terraform's "changed outside
of Terraform"). Found in the manager's cluster state alone, since every release record says
which module digests it placed on its node [pure].

Four kinds, each with the step that converges it:
- an engine serving a module its node's applied release does not place there (the engine is
  deregistered);
- an explicit routing rule: wrctl apply writes none (the rule is deleted);
- a placed module that no healthy engine on its node serves, or fewer healthy engines than the
  release asks for (the node is restarted behind the health gate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

from runtime.api import wruntime_pb2 as pb
from runtime.wire import module_key

RESOURCES_KEY = "resources"  # ReleaseRecord.attributes key of the applied resources (live.py)


class DriftKind(StrEnum):
    STRAY_ENGINE = "stray_engine"
    EXPLICIT_RULE = "explicit_rule"
    MODULE_MISSING = "module_missing"
    MODULE_UNHEALTHY = "module_unhealthy"
    ENGINES_SHORT = "engines_short"


# What apply does about each kind: "deregister" the engine, "delete" the rule, "restart" the node.
CONVERGE = {
    DriftKind.STRAY_ENGINE: "deregister",
    DriftKind.EXPLICIT_RULE: "delete",
    DriftKind.MODULE_MISSING: "restart",
    DriftKind.MODULE_UNHEALTHY: "restart",
    DriftKind.ENGINES_SHORT: "restart",
}


@dataclass(frozen=True)
class Drift:
    """One difference: a stable address, what differs, and what converging it touches
    (`node` restarted or holding the engine, `ref` the engine or rule id)."""

    address: str
    kind: DriftKind
    detail: str
    node: str = ""
    ref: str = ""

    @property
    def converge(self) -> str:
        return CONVERGE[self.kind]

    @property
    def step(self) -> str:
        """What apply does about it, as the plan's footer says it."""
        if self.kind is DriftKind.STRAY_ENGINE:
            return f"deregisters engine {self.ref} on {self.node}"
        if self.kind is DriftKind.EXPLICIT_RULE:
            return f"deletes routing rule {self.ref}"
        return f"restarts node {self.node}"

    def to_json(self) -> dict[str, str]:
        return {
            "address": self.address,
            "kind": self.kind.value,
            "detail": self.detail,
            "converge": self.converge,
            "node": self.node,
            "ref": self.ref,
        }


def find_drift(response: pb.GetClusterStateResponse) -> tuple[Drift, ...]:
    """Every drift item of a cluster state, rules first, then node by node."""
    items = [_rule(rule) for rule in sorted(response.explicit_rules, key=lambda r: r.rule_id)]
    for node in sorted(response.nodes, key=lambda n: n.name):
        items += _stray_engines(node)
        if node.HasField("release") and node.release.status != "failed":
            items += _unserved_modules(node)
    return tuple(items)


def _rule(rule: pb.RoutingRule) -> Drift:
    module = f"{rule.destination_namespace}.{rule.destination_module}"
    if rule.destination_version:
        module += f"@{rule.destination_version}"
    target = f"engine {rule.engine_id or '(none)'}"
    if rule.engine_address:
        target += f" at {rule.engine_address}"
    if rule.peer_address:
        target += f" (peer {rule.peer_address})"
    detail = f"written outside wrctl apply: {module} -> {target}"
    return Drift(f"routing_rule.{rule.rule_id}", DriftKind.EXPLICIT_RULE, detail, ref=rule.rule_id)


def _stray_engines(node: pb.NodeState) -> list[Drift]:
    """Engines serving a module key or digest that the node's applied release does not place
    there. Those of the pending release (an apply that stopped half-way) are drift too, said so."""
    applied = dict(node.release.module_digests) if node.HasField("release") else {}
    pending = dict(node.pending.module_digests) if node.HasField("pending") else {}
    items = []
    for engine in sorted(node.engines, key=lambda e: e.registration.engine_id):
        reg = engine.registration
        served = {module_key(m.namespace, m.name, m.version): m.digest for m in reg.modules}
        stray = {k: d for k, d in sorted(served.items()) if applied.get(k) != d}
        if not stray:
            continue
        what = ", ".join(f"{k} ({_short(d)})" for k, d in stray.items())
        if all(pending.get(k) == d for k, d in stray.items()):
            why = f"from an unfinished apply: serves {what}, which only the pending release places"
        elif not node.HasField("release"):
            why = f"serves {what} under node {node.name}, which has no applied release"
        else:
            why = f"serves {what}, which the applied release of {node.name} does not place there"
        if not engine.healthy:
            why += " (no recent heartbeat)"
        address = f"node.{node.name}/engine.{reg.engine_id}"
        items.append(Drift(address, DriftKind.STRAY_ENGINE, why, node.name, reg.engine_id))
    return items


def _unserved_modules(node: pb.NodeState) -> list[Drift]:
    """Placed modules that no healthy engine on the node serves at the placed digest: missing
    (no engine serves it) or unhealthy (an engine serves it but is not healthy or reports the
    module unhealthy); and a node with fewer healthy engines than its release asks for."""
    items = []
    for key, digest in sorted(node.release.module_digests.items()):
        serving = [
            e
            for e in node.engines
            if any(
                module_key(m.namespace, m.name, m.version) == key and m.digest == digest
                for m in e.registration.modules
            )
        ]
        if any(e.healthy and _module_healthy(e, key) for e in serving):
            continue
        namespace_name, _, _ = key.partition("@")
        address = f"module.{namespace_name}@node.{node.name}"
        if not serving:
            detail = f"missing: no engine on {node.name} serves {key} ({_short(digest)})"
            items.append(Drift(address, DriftKind.MODULE_MISSING, detail, node.name))
            continue
        reasons = [
            f"engine {e.registration.engine_id} "
            + ("has no recent heartbeat" if not e.healthy else "reports it unhealthy")
            for e in sorted(serving, key=lambda e: e.registration.engine_id)
        ]
        detail = f"unhealthy: {key} on {node.name}: " + "; ".join(reasons)
        items.append(Drift(address, DriftKind.MODULE_UNHEALTHY, detail, node.name))
    expected = _expected_engines(node.release)
    healthy = sum(1 for e in node.engines if e.healthy)
    if expected is not None and healthy < expected:
        detail = f"{healthy} of {expected} engines healthy on {node.name}"
        items.append(Drift(f"node.{node.name}", DriftKind.ENGINES_SHORT, detail, node.name))
    return items


def _module_healthy(engine: pb.EngineStatus, key: str) -> bool:
    return any(
        h.healthy and module_key(h.module.namespace, h.module.name, h.module.version) == key
        for h in engine.modules
    )


def _expected_engines(release: pb.ReleaseRecord) -> int | None:
    """The engine count the release's node resource asked for (None when it does not say)."""
    raw = release.attributes.get(RESOURCES_KEY)
    if not raw:
        return None
    for item in json.loads(raw):
        if item.get("kind") == "node":
            value = item.get("attributes", {}).get("engines", "")
            return int(value) if str(value).isdigit() else None
    return None


def _short(digest: str) -> str:
    return digest[:19] + "…" if digest.startswith("sha256:") and len(digest) > 19 else digest

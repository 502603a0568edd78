"""Drift: GetClusterStateResponse objects -> drift items, one test per kind; and converge's
choices over a manager client that records what it was asked."""

from __future__ import annotations

from dataclasses import dataclass, field

from runtime.api import wruntime_pb2 as pb
from tests.unit.wrctl.drift_builders import CALLER, D1, D2, ECHO, engine, release, rule
from wrctl.plan.drift import Drift, DriftKind, find_drift
from wrctl.plan.live import from_cluster_state


def _state(
    *nodes: pb.NodeState, rules: tuple[pb.RoutingRule, ...] = ()
) -> pb.GetClusterStateResponse:
    return pb.GetClusterStateResponse(serial=5, nodes=nodes, explicit_rules=rules)


def _one(response: pb.GetClusterStateResponse) -> Drift:
    [item] = find_drift(response)
    return item


def test_a_cluster_that_matches_its_releases_has_no_drift() -> None:
    node = pb.NodeState(
        name="a",
        release=release("a", {ECHO: D1, CALLER: D2}),
        engines=[engine("e1", "a", {ECHO: D1, CALLER: D2})],
    )
    assert find_drift(_state(node)) == ()
    assert from_cluster_state(_state(node)).drift == ()


def test_an_engine_serving_a_module_the_release_does_not_place_is_drift() -> None:
    node = pb.NodeState(
        name="a",
        release=release("a", {ECHO: D1}),
        engines=[engine("e1", "a", {ECHO: D1}), engine("imp", "a", {CALLER: D1})],
    )
    item = _one(_state(node))
    assert (item.address, item.kind, item.node, item.ref) == (
        "node.a/engine.imp",
        DriftKind.STRAY_ENGINE,
        "a",
        "imp",
    )
    assert item.detail == (
        f"serves {CALLER} (sha256:111111111111…), which the applied release of a does not "
        "place there"
    )
    assert item.converge == "deregister" and item.step == "deregisters engine imp on a"


def test_the_same_module_at_another_digest_is_drift_and_a_dead_engine_says_so() -> None:
    node = pb.NodeState(
        name="a",
        release=release("a", {ECHO: D1}),
        engines=[engine("e1", "a", {ECHO: D1}), engine("old", "a", {ECHO: D2}, healthy=False)],
    )
    item = _one(_state(node))
    assert item.address == "node.a/engine.old"
    assert f"serves {ECHO} (sha256:222222222222…)" in item.detail
    assert item.detail.endswith("(no recent heartbeat)")


def test_engines_of_an_unfinished_apply_are_drift_said_so() -> None:
    node = pb.NodeState(
        name="a",
        release=release("a", {ECHO: D1}),
        pending=release("a", {ECHO: D2}, status="pending"),
        engines=[engine("e1", "a", {ECHO: D1}), engine("new", "a", {ECHO: D2})],
    )
    item = _one(_state(node))
    assert item.address == "node.a/engine.new" and item.kind is DriftKind.STRAY_ENGINE
    assert item.detail.startswith("from an unfinished apply: serves example.echo@1.0.0")
    assert "only the pending release places" in item.detail


def test_engines_under_a_node_name_without_a_release_are_drift() -> None:
    ghost = pb.NodeState(name="ghost", engines=[engine("g1", "ghost", {ECHO: D1})])
    item = _one(_state(ghost))
    assert item.address == "node.ghost/engine.g1"
    assert "under node ghost, which has no applied release" in item.detail


def test_every_explicit_rule_is_drift() -> None:
    item = _one(_state(rules=(rule("r1"),)))
    assert (item.address, item.kind, item.ref) == ("routing_rule.r1", DriftKind.EXPLICIT_RULE, "r1")
    assert item.detail == (
        "written outside wrctl apply: example.echo@1.0.0 -> engine evil at "
        "http://10.0.0.9:8080 (peer https://10.0.0.9:9443)"
    )
    assert item.step == "deletes routing rule r1"


def test_a_placed_module_that_nothing_serves_is_missing() -> None:
    node = pb.NodeState(name="a", release=release("a", {ECHO: D1}))
    missing, short = find_drift(_state(node))
    assert (missing.address, missing.kind) == (
        "module.example.echo@node.a",
        DriftKind.MODULE_MISSING,
    )
    assert missing.detail == f"missing: no engine on a serves {ECHO} (sha256:111111111111…)"
    assert (short.address, short.kind, short.detail) == (
        "node.a",
        DriftKind.ENGINES_SHORT,
        "0 of 1 engines healthy on a",
    )
    assert missing.step == short.step == "restarts node a"


def test_a_module_served_only_by_a_dead_engine_is_unhealthy_not_missing() -> None:
    node = pb.NodeState(
        name="a",
        release=release("a", {ECHO: D1}),
        engines=[engine("e1", "a", {ECHO: D1}, healthy=False)],
    )
    unhealthy, short = find_drift(_state(node))
    assert unhealthy.kind is DriftKind.MODULE_UNHEALTHY
    assert unhealthy.detail == f"unhealthy: {ECHO} on a: engine e1 has no recent heartbeat"
    assert short.kind is DriftKind.ENGINES_SHORT


def test_a_module_its_engine_reports_unhealthy_is_unhealthy() -> None:
    node = pb.NodeState(
        name="a",
        release=release("a", {ECHO: D1, CALLER: D1}),
        engines=[engine("e1", "a", {ECHO: D1, CALLER: D1}, sick=frozenset({CALLER}))],
    )
    item = _one(_state(node))
    assert (item.address, item.kind) == ("module.example.caller@node.a", DriftKind.MODULE_UNHEALTHY)
    assert item.detail == f"unhealthy: {CALLER} on a: engine e1 reports it unhealthy"


def test_fewer_healthy_engines_than_the_release_asks_for_is_drift() -> None:
    node = pb.NodeState(
        name="a",
        release=release("a", {ECHO: D1}, engines=2),
        engines=[engine("e1", "a", {ECHO: D1})],
    )
    item = _one(_state(node))
    assert (item.address, item.detail) == ("node.a", "1 of 2 engines healthy on a")


def test_a_node_whose_last_record_failed_is_not_checked_for_missing_modules() -> None:
    node = pb.NodeState(name="a", release=release("a", {ECHO: D1}, status="failed"))
    assert find_drift(_state(node)) == ()


def test_drift_comes_rules_first_then_node_by_node() -> None:
    b = pb.NodeState(
        name="b", release=release("b", {ECHO: D1}), engines=[engine("x", "b", {ECHO: D1})]
    )
    a = pb.NodeState(
        name="a", release=release("a", {}, engines=0), engines=[engine("y", "a", {ECHO: D1})]
    )
    addresses = [d.address for d in find_drift(_state(b, a, rules=(rule("r2"), rule("r1"))))]
    assert addresses == ["routing_rule.r1", "routing_rule.r2", "node.a/engine.y"]


# ── converge ────────────────────────────────────────────────────────────


@dataclass
class _Client:
    """The part of ManagerClient converge uses; the state it returns is what the test says."""

    now: pb.GetClusterStateResponse
    calls: list[str] = field(default_factory=list)
    refuse: str = ""

    def state(self) -> pb.GetClusterStateResponse:
        return self.now

    def delete_rule(self, rule_id: str) -> None:
        self._do(f"delete {rule_id}")

    def deregister_engine(self, engine_id: str) -> None:
        self._do(f"deregister {engine_id}")

    def _do(self, call: str) -> None:
        from wrctl.errors import WrctlError

        if self.refuse and self.refuse in call:
            raise WrctlError(f"manager: {call} refused")
        self.calls.append(call)


def _converge(plan_drift: tuple[Drift, ...], client: _Client) -> tuple[list[str], list[str]]:
    from wrctl.deploy.converge import converge

    reports: list[str] = []

    @dataclass
    class _Plan:
        drift: tuple[Drift, ...]

    @dataclass
    class _Session:
        client: _Client

        def report(self, target: str, message: str) -> None:
            reports.append(f"{target}: {message}")

    results = converge(_Plan(plan_drift), _Session(client))  # type: ignore[arg-type]
    return [f"{r.target} {r.status}" for r in results], reports


def test_converge_deletes_rules_and_deregisters_engines_that_still_drift() -> None:
    node = pb.NodeState(
        name="a",
        release=release("a", {ECHO: D1}),
        engines=[engine("e1", "a", {ECHO: D1}), engine("imp", "a", {CALLER: D1})],
    )
    shown = find_drift(_state(node, rules=(rule("r1"),)))
    client = _Client(_state(node, rules=(rule("r1"),)))
    results, reports = _converge(shown, client)
    assert client.calls == ["delete r1", "deregister imp"]
    assert results == ["routing_rule.r1 converged", "node.a/engine.imp converged"]
    assert reports == [
        "routing_rule.r1: routing rule r1 deleted",
        "node.a/engine.imp: engine imp of a deregistered",
    ]


def test_converge_leaves_what_settled_and_what_the_plan_did_not_show() -> None:
    before = pb.NodeState(
        name="a", release=release("a", {ECHO: D1}), engines=[engine("new", "a", {ECHO: D2})]
    )
    shown = tuple(d for d in find_drift(_state(before)) if d.kind is DriftKind.STRAY_ENGINE)
    # The rollout of this apply placed D2 on a: the engine is no longer drift. A rule that
    # appeared meanwhile was not reviewed, so it stays for the next plan.
    after = pb.NodeState(
        name="a", release=release("a", {ECHO: D2}), engines=[engine("new", "a", {ECHO: D2})]
    )
    client = _Client(_state(after, rules=(rule("late"),)))
    results, reports = _converge(shown, client)
    assert client.calls == []
    assert results == ["node.a/engine.new converged"]
    assert reports == ["node.a/engine.new: no longer differs; left as it is"]


def test_a_refused_converge_step_is_a_failed_result() -> None:
    response = _state(rules=(rule("r1"),))
    client = _Client(response, refuse="delete")
    results, reports = _converge(find_drift(response), client)
    assert results == ["routing_rule.r1 failed"]
    assert reports == ["routing_rule.r1: could not converge: manager: delete r1 refused"]

"""The planner and its renderer: (desired, live) fixtures -> actions -> golden text."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.wire import COMPONENT_HEADER
from tests.unit.wrctl.drift_builders import D1, D2, ECHO, engine, release, rule
from wrctl.config import load_targets
from wrctl.errors import StalePlanError
from wrctl.plan import ActionKind, diff, make_plan, render_json, render_text, resolve, summary
from wrctl.plan.live import from_cluster_state
from wrctl.plan.planfile import SavedPlan, is_plan_file, load, save
from wrctl.plan.state import ClusterState

GOLDEN = Path(__file__).parent / "golden"
CLUSTER = """\
[cluster]
name = "shop"

[defaults]
format = "supervisor"
workdir = "/opt/wruntime"

[[node]]
name = "node-a"
host = "local"

[[module]]
namespace = "example"
name = "echo"
version = "1.0.0"
component = "echo.wasm"
env = { GREETING = "hi", API_KEY = { secret = "api-key" } }

[[module]]
namespace = "example"
name = "caller"
version = "1.0.0"
component = "caller.wasm"
"""


def _desired(tmp_path: Path, text: str = CLUSTER, echo: bytes = b"echo-v1") -> ClusterState:
    (tmp_path / "echo.wasm").write_bytes(COMPONENT_HEADER + echo)
    (tmp_path / "caller.wasm").write_bytes(COMPONENT_HEADER + b"caller-v1")
    (tmp_path / "cluster.toml").write_text(text)
    return resolve(load_targets(tmp_path / "cluster.toml"), "0.1.0")


def _healthy(state: ClusterState, serial: int = 7) -> ClusterState:
    return replace(state, serial=serial)


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"plan output differs from {path} (UPDATE_GOLDEN=1 to accept)"


def test_create_everything(tmp_path: Path) -> None:
    actions = diff(_desired(tmp_path), ClusterState(resources={}, reachable=False))
    assert [a.address for a in actions] == [
        "manager",
        "node.node-a",
        "module.example.caller",
        "module.example.echo",
    ]
    assert summary(actions) == (4, 0, 0)
    _check_golden("create", render_text(actions))


def test_no_changes(tmp_path: Path) -> None:
    desired = _desired(tmp_path)
    actions = diff(desired, _healthy(desired))
    assert actions == []
    _check_golden("noop", render_text(actions))


def test_env_change_updates_in_place(tmp_path: Path) -> None:
    live = _healthy(_desired(tmp_path))
    desired = _desired(tmp_path / "..", CLUSTER.replace('"hi"', '"hello"'))
    actions = diff(desired, live)
    assert [(a.address, a.kind) for a in actions] == [("module.example.echo", ActionKind.UPDATE)]
    change = actions[0].changes[0]
    assert (change.attribute, change.old, change.new) == ("env.GREETING", "hi", "hello")
    _check_golden("update", render_text(actions))


def test_component_change_replaces(tmp_path: Path) -> None:
    live = _healthy(_desired(tmp_path))
    actions = diff(_desired(tmp_path, echo=b"echo-v2"), live)
    assert [(a.address, a.kind) for a in actions] == [("module.example.echo", ActionKind.REPLACE)]
    assert actions[0].changes[0].forces_replacement
    assert summary(actions) == (1, 0, 1)
    _check_golden("replace", render_text(actions))


def test_removed_module_is_destroyed(tmp_path: Path) -> None:
    live = _healthy(_desired(tmp_path))
    without_caller = CLUSTER[: CLUSTER.index('[[module]]\nnamespace = "example"\nname = "caller"')]
    actions = diff(_desired(tmp_path, without_caller), live)
    assert [(a.address, a.kind) for a in actions] == [("module.example.caller", ActionKind.DESTROY)]
    _check_golden("destroy", render_text(actions))


def _recorded(
    desired: ClusterState,
    engines: tuple[pb.EngineStatus, ...] | None = None,
    rules: tuple[pb.RoutingRule, ...] = (),
) -> pb.GetClusterStateResponse:
    """What the manager reports after an apply of `desired` on node-a, with these engines
    (by default one healthy engine serving every placed module) and explicit rules."""
    modules = [r for r in desired.resources.values() if r.kind == "module"]
    digests = {
        f"{r.address.removeprefix('module.')}@{r.attributes['version']}": r.attributes["component"]
        for r in modules
    }
    node = desired.resources["node.node-a"]
    if engines is None:
        engines = (engine("e1", "node-a", digests),)
    return pb.GetClusterStateResponse(
        serial=7,
        manager_release=release("manager", {}, resources=[desired.resources["manager"]]),
        nodes=[
            pb.NodeState(
                name="node-a",
                release=release("node-a", digests, resources=[node, *modules]),
                engines=engines,
            )
        ],
        explicit_rules=rules,
    )


def _live(response: pb.GetClusterStateResponse) -> ClusterState:
    return replace(from_cluster_state(response), secrets=frozenset({"example/api-key"}))


def test_a_recorded_cluster_that_runs_as_recorded_has_no_changes(tmp_path: Path) -> None:
    desired = _desired(tmp_path)
    plan = make_plan(load_targets(tmp_path / "cluster.toml"), _live(_recorded(desired)))
    assert plan.actions == [] and plan.drift == () and not plan.changes
    assert render_text(plan.actions, plan.drift) == (GOLDEN / "noop.txt").read_text()


def test_drift_is_listed_under_its_own_heading(tmp_path: Path) -> None:
    desired = _desired(tmp_path)
    stray = engine("imp", "node-a", {"example.echo@1.0.0": D2})
    response = _recorded(desired, engines=(stray,), rules=(rule("r1"),))
    plan = make_plan(load_targets(tmp_path / "cluster.toml"), _live(response))
    assert plan.actions == [] and plan.changes
    assert [d.address for d in plan.drift] == [
        "routing_rule.r1",
        "node.node-a/engine.imp",
        "module.example.caller@node.node-a",
        "module.example.echo@node.node-a",
    ]
    text = render_text(plan.actions, plan.drift)
    assert "No changes" not in text
    assert text.endswith("Plan: 0 to add, 0 to change, 0 to destroy. Drift: 4 to converge.\n")
    _check_golden("drift", text)


def test_drift_comes_before_the_actions(tmp_path: Path) -> None:
    live = _live(_recorded(_desired(tmp_path), rules=(rule("r1"),)))
    _desired(tmp_path, CLUSTER.replace('"hi"', '"hello"'))
    plan = make_plan(load_targets(tmp_path / "cluster.toml"), live)
    assert [a.address for a in plan.actions] == ["module.example.echo"]
    text = render_text(plan.actions, plan.drift)
    assert text.index("Changed outside wrctl") < text.index("wrctl will perform")
    assert "Plan: 0 to add, 1 to change, 0 to destroy. Drift: 1 to converge." in text
    _check_golden("drift_and_update", text)


def test_a_node_the_configuration_removes_is_not_restarted_for_its_drift(tmp_path: Path) -> None:
    response = _recorded(_desired(tmp_path), engines=())
    # node-b was applied once and has since left cluster.toml; its engines are gone too
    response.nodes.append(pb.NodeState(name="node-b", release=release("node-b", {ECHO: D1})))
    plan = make_plan(load_targets(tmp_path / "cluster.toml"), _live(response))
    assert "node.node-b" in {d.address for d in plan.live.drift}
    assert {d.node for d in plan.drift} == {"node-a"}
    from wrctl.deploy.apply import _work
    from wrctl.deploy.converge import restart_nodes

    assert list(restart_nodes(plan)) == ["node-a"]
    assert _work(plan).nodes == ["node-a"]  # redeployed in place, though nothing changed


def test_secret_values_and_passwords_never_appear(tmp_path: Path) -> None:
    text = CLUSTER.replace(
        "[defaults]", '[manager]\nstate = "postgres://wr:hunter2@db:5432/wr"\n\n[defaults]'
    )
    actions = diff(_desired(tmp_path, text), ClusterState(resources={}))
    rendered = render_text(actions) + json.dumps(render_json(actions, 0, "shop"))
    assert "hunter2" not in rendered
    assert "postgres://wr:***@db:5432/wr" in rendered
    assert "(secret api-key)" in rendered


def test_json_view(tmp_path: Path) -> None:
    live = _healthy(_desired(tmp_path))
    actions = diff(_desired(tmp_path, echo=b"echo-v2"), live)
    data = render_json(actions, 7, "shop")
    assert data["summary"] == {"add": 1, "change": 0, "destroy": 1, "drift": 0}
    assert data["serial"] == 7 and data["changes"] is True and data["drift"] == []
    [action] = data["actions"]  # type: ignore[misc]
    assert action["action"] == "replace"
    assert action["changes"][0]["attribute"] == "component"


def test_json_view_lists_drift(tmp_path: Path) -> None:
    live = _live(_recorded(_desired(tmp_path), rules=(rule(),)))
    plan = make_plan(load_targets(tmp_path / "cluster.toml"), live)
    data = render_json(plan.actions, 7, "shop", plan.drift)
    assert data["changes"] is True and data["actions"] == []
    assert data["summary"] == {"add": 0, "change": 0, "destroy": 0, "drift": 1}
    assert data["drift"] == [
        {
            "address": "routing_rule.r1",
            "kind": "explicit_rule",
            "detail": "written outside wrctl apply: example.echo@1.0.0 -> engine evil at "
            "http://10.0.0.9:8080 (peer https://10.0.0.9:9443)",
            "converge": "delete",
            "node": "",
            "ref": "r1",
        }
    ]


def test_saved_plan_round_trips(tmp_path: Path) -> None:
    _desired(tmp_path)
    targets = load_targets(tmp_path / "cluster.toml")
    live = ClusterState(resources={}, serial=4, secrets=frozenset({"example/api-key"}))
    plan = make_plan(targets, live)
    save(plan.saved(), tmp_path / "plan.out")
    loaded = load(tmp_path / "plan.out")
    assert loaded == plan.saved()
    assert oct((tmp_path / "plan.out").stat().st_mode & 0o777) == "0o600"
    loaded.check_current(tmp_path / "plan.out", plan)  # nothing moved: no error


def test_a_saved_plan_is_stale_when_its_inputs_or_the_live_state_moved(tmp_path: Path) -> None:
    _desired(tmp_path)
    targets = load_targets(tmp_path / "cluster.toml")
    live = ClusterState(resources={}, serial=4, secrets=frozenset({"example/api-key"}))
    saved = make_plan(targets, live).saved()
    moved = make_plan(targets, replace(live, serial=5))
    with pytest.raises(StalePlanError, match=r"live cluster changed .*serial 4 -> 5"):
        saved.check_current("p", moved)
    _desired(tmp_path, echo=b"echo-v2")
    edited = make_plan(load_targets(tmp_path / "cluster.toml"), live)
    with pytest.raises(StalePlanError, match="or a file it names changed"):
        saved.check_current("p", edited)


def test_a_format_1_plan_file_still_loads(tmp_path: Path) -> None:
    old = {
        "kind": "wrctl-plan",
        "format_version": 1,
        "cluster": "shop",
        "config_path": "cluster.toml",
        "config_digest": "sha256:ab",
        "serial": 3,
        "manager_reachable": True,
        "actions": [],
        "desired": [],
    }
    (tmp_path / "p").write_text(json.dumps(old))
    assert is_plan_file(tmp_path / "p")
    assert load(tmp_path / "p") == SavedPlan("shop", "cluster.toml", "sha256:ab", 3, True)


@pytest.mark.parametrize(
    "content", ["{}", "not json", '{"kind": "wrctl-plan", "format_version": 9}']
)
def test_bad_plan_files_are_refused(tmp_path: Path, content: str) -> None:
    from wrctl.errors import WrctlError

    (tmp_path / "p").write_text(content)
    with pytest.raises(WrctlError, match="plan"):
        load(tmp_path / "p")


def test_a_secret_the_manager_lacks_stops_the_plan(tmp_path: Path) -> None:
    from wrctl.errors import ConfigError

    _desired(tmp_path)
    targets = load_targets(tmp_path / "cluster.toml")
    with pytest.raises(ConfigError, match=r"env\.API_KEY references secret example/api-key"):
        make_plan(targets, ClusterState(resources={}, secrets=frozenset({"other/api-key"})))
    # Before the first apply there is no manager to ask: nothing to check yet.
    assert make_plan(targets, ClusterState(resources={}, reachable=False)).actions


def test_a_secret_a_capability_needs_must_be_held_too(tmp_path: Path) -> None:
    from wrctl.errors import ConfigError

    text = CLUSTER.replace(
        'component = "caller.wasm"\n',
        'component = "caller.wasm"\ncapabilities = ["llm", "db"]\n',
    )
    text += '\n[llm]\napi_key = { secret = "anthropic" }\n'
    text += '\n[database]\nurl = "postgres://admin@127.0.0.1:5432/shop"\n'
    _desired(tmp_path, text)
    targets = load_targets(tmp_path / "cluster.toml")
    held = frozenset({"example/api-key"})
    # the role password is apply's to make: only the API key is asked for
    with pytest.raises(ConfigError, match=r"needs secret example/anthropic \(\[llm\]\)") as e:
        make_plan(targets, ClusterState(resources={}, secrets=held))
    assert "wr-db-password" not in str(e.value)
    plan = make_plan(targets, ClusterState(resources={}, secrets=held | {"example/anthropic"}))
    assert plan.actions


def test_a_saved_plan_carries_its_drift_and_is_stale_on_drift_it_did_not_show(
    tmp_path: Path,
) -> None:
    desired = _desired(tmp_path)
    targets = load_targets(tmp_path / "cluster.toml")
    shown = make_plan(targets, _live(_recorded(desired, rules=(rule("r1"),))))
    save(shown.saved(), tmp_path / "plan.out")
    saved = load(tmp_path / "plan.out")
    assert saved.drift == ("routing_rule.r1",)
    assert json.loads((tmp_path / "plan.out").read_text())["format_version"] == 3
    saved.check_current("p", shown)
    # The rule went away by itself: nothing left to converge, the plan still applies.
    saved.check_current("p", make_plan(targets, _live(_recorded(desired))))
    more = make_plan(targets, _live(_recorded(desired, rules=(rule("r1"), rule("r2")))))
    with pytest.raises(StalePlanError, match=r"routing_rule\.r2 drifted since"):
        saved.check_current("p", more)


def _plan_cli(monkeypatch: pytest.MonkeyPatch, live: ClusterState, *args: str) -> tuple[int, str]:
    """`wrctl plan ARGS` against `live` (what the manager would have answered)."""
    from typer.testing import CliRunner

    import wrctl.observe
    from wrctl.cli import app

    monkeypatch.setattr(wrctl.observe, "observe_live", lambda targets: live)
    result = CliRunner().invoke(app, ["plan", *args])
    return result.exit_code, result.output


def test_detailed_exitcode_is_2_for_drift_alone_and_json_lists_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    desired = _desired(tmp_path)
    cluster = str(tmp_path / "cluster.toml")
    converged = _live(_recorded(desired))
    code, output = _plan_cli(monkeypatch, converged, cluster, "--detailed-exitcode")
    assert (code, "No changes." in output) == (0, True), output

    drifted = _live(_recorded(desired, rules=(rule("r1"),)))
    code, output = _plan_cli(monkeypatch, drifted, cluster, "--detailed-exitcode")
    assert code == 2, output
    assert "Changed outside wrctl" in output and "routing_rule.r1" in output
    assert "No changes" not in output
    assert _plan_cli(monkeypatch, drifted, cluster)[0] == 0
    code, output = _plan_cli(monkeypatch, drifted, cluster, "--json", "--detailed-exitcode")
    assert code == 2
    assert [d["address"] for d in json.loads(output)["drift"]] == ["routing_rule.r1"]

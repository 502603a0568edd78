"""The planner and its renderer: (desired, live) fixtures -> actions -> golden text."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from runtime.wire import COMPONENT_HEADER
from wrctl.config import load_targets
from wrctl.errors import StalePlanError
from wrctl.plan import ActionKind, diff, make_plan, render_json, render_text, resolve, summary
from wrctl.plan.planfile import SavedPlan, is_plan_file, load, save
from wrctl.plan.state import ClusterState, EngineHealth

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
    engine = EngineHealth("e1", "node-a", True)
    return replace(state, engines=(engine,), serial=serial)


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


def test_unhealthy_engines_are_redeployed(tmp_path: Path) -> None:
    desired = _desired(tmp_path)
    live = replace(desired, engines=(EngineHealth("e1", "node-a", False),), serial=3)
    actions = diff(desired, live)
    assert [(a.address, a.kind, a.reason) for a in actions] == [
        ("node.node-a", ActionKind.UPDATE, "0 of 1 engines healthy on node-a")
    ]
    _check_golden("drift", render_text(actions))


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
    assert data["summary"] == {"add": 1, "change": 0, "destroy": 1}
    assert data["serial"] == 7 and data["changes"] is True
    [action] = data["actions"]  # type: ignore[misc]
    assert action["action"] == "replace"
    assert action["changes"][0]["attribute"] == "component"


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

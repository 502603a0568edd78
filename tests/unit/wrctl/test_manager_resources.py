"""Each manager of [manager] hosts is a plan resource `manager.<host>`: fixtures (desired,
live) -> actions, the live state read back from the manager's record, and apply deploying
only the hosts whose resource changed, one at a time, recording each as it passes its gate."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from runtime.api import wruntime_pb2 as pb
from tests.unit.wrctl.test_managers_ha import FakeRollout
from wrctl.config import load_targets
from wrctl.config.targets import Targets
from wrctl.errors import ManagerUnreachable
from wrctl.plan import ActionKind, ClusterState, make_plan, render_json, render_text, resolve
from wrctl.plan.live import RESOURCES_KEY, encode_resources, from_cluster_state
from wrctl.plan.managers import MANAGER_BUNDLES, NOT_RUNNING

PG = "postgresql://wr@db.example:5432/wr"
HOSTS = ["10.0.0.9", "10.0.0.10", "10.0.0.2"]  # cluster.toml order is not string order
CONFIG = """\
[cluster]
name = "c"

[manager]
hosts = {hosts}
state = "{pg}"

[defaults]
format = "systemd"

[[node]]
name = "a"
host = "10.0.0.50"
"""


def _targets(tmp_path: Path, hosts: list[str], extra: str = "") -> Targets:
    path = tmp_path / "cluster.toml"
    path.write_text(CONFIG.format(hosts=json.dumps(hosts), pg=PG) + extra)
    return load_targets(path)


def _live(targets: Targets, version: str = "0.1.0", **changes: object) -> ClusterState:
    """What the manager would report had `targets` been applied at `version`."""
    applied = resolve(targets, version).resources
    bundles = {a: f"sha256:{i:064x}" for i, a in enumerate(sorted(applied))}
    state = ClusterState(resources=applied, serial=7, bundles=bundles)
    return replace(state, **changes)  # type: ignore[arg-type]


def _managers(actions: list) -> list[tuple[str, ActionKind]]:  # type: ignore[type-arg]
    return [(a.address, a.kind) for a in actions if a.resource_kind == "manager"]


def test_adding_a_host_creates_only_its_manager(tmp_path: Path) -> None:
    live = _live(_targets(tmp_path, HOSTS[:2]))
    plan = make_plan(_targets(tmp_path, HOSTS), live, "0.1.0")
    assert _managers(plan.actions) == [("manager.10.0.0.2", ActionKind.CREATE)]
    text = render_text(plan.actions)
    assert "  + manager.10.0.0.2 {" in text
    line = next(x for x in text.splitlines() if "advertise_address" in x)
    assert line.split() == ["+", "advertise_address", "=", '"10.0.0.2:9000"']
    shown = render_json(plan.actions, 7, "c")["actions"]
    assert any(a["address"] == "manager.10.0.0.2" for a in shown)  # type: ignore[index,union-attr]


def test_removing_a_host_destroys_only_its_manager(tmp_path: Path) -> None:
    live = _live(_targets(tmp_path, HOSTS))
    plan = make_plan(_targets(tmp_path, HOSTS[:2]), live, "0.1.0")
    assert _managers(plan.actions) == [("manager.10.0.0.2", ActionKind.DESTROY)]
    assert plan.actions[-1].address == "manager.10.0.0.2"  # after every node's action
    assert "  - manager.10.0.0.2 {" in render_text(plan.actions)


def test_a_change_that_concerns_one_host_updates_only_that_manager(tmp_path: Path) -> None:
    live = _live(_targets(tmp_path, HOSTS))
    # A node on 10.0.0.10: that host's manager now dispatches jobs through its proxy.
    node = '[[node]]\nname = "b"\nhost = "10.0.0.10"\n'
    plan = make_plan(_targets(tmp_path, HOSTS, node), live, "0.1.0")
    assert _managers(plan.actions) == [("manager.10.0.0.10", ActionKind.UPDATE)]
    update = next(a for a in plan.actions if a.address == "manager.10.0.0.10")
    assert [c.attribute for c in update.changes] == ["config"]


def test_upgrading_all_replaces_each_manager_in_cluster_toml_order(tmp_path: Path) -> None:
    targets = _targets(tmp_path, HOSTS)
    plan = make_plan(targets, _live(targets, "0.0.9"), "0.1.0")
    assert _managers(plan.actions) == [(f"manager.{h}", ActionKind.REPLACE) for h in HOSTS]
    assert [a.address for a in plan.actions[:3]] == [f"manager.{h}" for h in HOSTS]
    from wrctl.deploy.apply import _work

    assert _work(plan).managers == tuple(f"manager.{h}" for h in HOSTS)


def test_a_recorded_manager_that_is_not_running_is_redeployed(tmp_path: Path) -> None:
    targets = _targets(tmp_path, HOSTS)
    up = frozenset({"10.0.0.9:9000", "10.0.0.2:9000"})
    plan = make_plan(targets, _live(targets, managers_up=up), "0.1.0")
    assert _managers(plan.actions) == [("manager.10.0.0.10", ActionKind.UPDATE)]
    assert plan.actions[0].reason == NOT_RUNNING
    # All up, or a manager that cannot say (None): nothing to do.
    for answer in (up | {"10.0.0.10:9000"}, None):
        assert make_plan(targets, _live(targets, managers_up=answer), "0.1.0").actions == []


def test_one_manager_stays_the_resource_manager(tmp_path: Path) -> None:
    one = _targets(tmp_path, HOSTS[:1])
    desired = resolve(one, "0.1.0").resources
    assert [a for a in desired if a.startswith("manager")] == ["manager"]
    assert sorted(desired["manager"].attributes) == sorted(
        [
            *("host", "format", "workdir", "user", "ssh_port", "python", "cluster"),
            *("runtime_version", "port", "admin_port", "state", "state_digest"),
            "heartbeat_timeout_secs",
        ]
    )
    assert make_plan(one, _live(one), "0.1.0").actions == []


def test_one_manager_becoming_several_and_back_is_host_by_host(tmp_path: Path) -> None:
    one, two = _targets(tmp_path, HOSTS[:1]), _targets(tmp_path, HOSTS[:2])
    grow = make_plan(two, _live(one), "0.1.0")
    # the first host's manager changes in place (it now advertises itself), the second is new
    assert _managers(grow.actions) == [
        ("manager.10.0.0.9", ActionKind.UPDATE),
        ("manager.10.0.0.10", ActionKind.CREATE),
    ]
    shrink = make_plan(one, _live(two), "0.1.0")
    assert _managers(shrink.actions) == [
        ("manager", ActionKind.UPDATE),
        ("manager.10.0.0.10", ActionKind.DESTROY),
    ]


def test_a_record_from_before_per_host_resources_stands_for_each_host(tmp_path: Path) -> None:
    targets = _targets(tmp_path, HOSTS[:2])
    old = resolve(_targets(tmp_path, HOSTS[:1]), "0.1.0").resources["manager"]
    legacy = replace(old, attributes={**old.attributes, "hosts": ",".join(HOSTS[:2])})
    plan = make_plan(targets, ClusterState(resources={"manager": legacy}), "0.1.0")
    managers = {a.address: a for a in plan.actions if a.resource_kind == "manager"}
    assert sorted(managers) == ["manager.10.0.0.10", "manager.10.0.0.9"]
    for action in managers.values():  # each only gains what per-host resources add
        assert action.kind is ActionKind.UPDATE
        assert {c.attribute for c in action.changes} == {"advertise_address", "config"}


def test_live_state_reads_every_host_from_the_managers_record(tmp_path: Path) -> None:
    desired = resolve(_targets(tmp_path, HOSTS[:2]), "0.1.0").resources
    managers = [desired["manager.10.0.0.9"], desired["manager.10.0.0.10"]]
    per_host = {"manager.10.0.0.9": "sha256:" + "a" * 64, "manager.10.0.0.10": "sha256:" + "b" * 64}
    record = pb.ReleaseRecord(
        target="manager",
        bundle_digest=per_host["manager.10.0.0.10"],
        status="applied",
        attributes=encode_resources(managers) | {MANAGER_BUNDLES: json.dumps(per_host)},
    )
    live = from_cluster_state(pb.GetClusterStateResponse(serial=3, manager_release=record))
    assert live.resources["manager.10.0.0.9"] == desired["manager.10.0.0.9"]
    assert live.bundles == {"manager": per_host["manager.10.0.0.10"], **per_host}


def _run(
    monkeypatch: pytest.MonkeyPatch, plan: object, events: list[str], failing: str = ""
) -> tuple[object, list[pb.ReleaseRecord]]:
    from wrctl.deploy import apply

    records: list[pb.ReleaseRecord] = []

    def failure(record: pb.ReleaseRecord) -> None:
        record.status = "failed"
        records.append(record)

    session = SimpleNamespace(
        open=lambda place: FakeRollout(place.host, events),
        report=lambda target, message: None,
        options=SimpleNamespace(health_timeout_s=1.0),
        record=lambda record: (events.append("record"), records.append(record)),
        record_failure=failure,
    )

    def install(self: object, rollout: FakeRollout, bundle: object, credentials: object) -> str:
        events.append(f"install {rollout.name}")
        return f"old-{rollout.name}"

    def gate(self: object, address: str) -> None:
        events.append(f"gate {address}")
        if failing and address.startswith(failing + ":"):
            raise ManagerUnreachable(f"manager at {address}: not answering")

    monkeypatch.setattr(apply._Apply, "install", install)
    monkeypatch.setattr(apply._Apply, "_manager_gate", gate)
    monkeypatch.setattr(apply, "remove_at", lambda place: events.append(f"remove {place.host}"))
    return apply._Apply(plan, session), records  # type: ignore[arg-type]


def _bundles(hosts: list[str]) -> list[object]:
    return [SimpleNamespace(digest=f"sha256:{i + 1:064x}") for i in range(len(hosts))]


def _resources(record: pb.ReleaseRecord) -> dict[str, str]:
    """manager.<host> -> runtime_version, as the record keeps them."""
    items = json.loads(record.attributes[RESOURCES_KEY])
    return {i["address"]: i["attributes"]["runtime_version"] for i in items}


def test_apply_upgrades_only_the_changed_host_and_records_every_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wrctl.deploy.apply import _work

    targets = _targets(tmp_path, HOSTS)
    live = _live(targets, "0.0.9")
    live = replace(live, resources={**live.resources, **{
        k: v for k, v in resolve(targets, "0.1.0").resources.items() if k != "manager.10.0.0.10"
    }})  # fmt: skip
    plan = make_plan(targets, live, "0.1.0")
    work = _work(plan)
    assert work.managers == ("manager.10.0.0.10",)
    events: list[str] = []
    run, records = _run(monkeypatch, plan, events)
    run.deploy_managers(_bundles(HOSTS), work.managers, record=True)  # type: ignore[attr-defined]
    assert events == [
        "run 10.0.0.9: cat /wr/manager/data/secrets.key",  # the key from a running manager
        "install 10.0.0.10",
        "restart 10.0.0.10",
        "gate 10.0.0.10:9000",
        "record",
    ]
    (record,) = records
    assert record.target == "manager" and record.status == "applied"
    assert record.bundle_digest == f"sha256:{2:064x}"
    assert _resources(record) == {f"manager.{h}": "0.1.0" for h in HOSTS}
    bundles = json.loads(record.attributes[MANAGER_BUNDLES])
    assert bundles["manager.10.0.0.10"] == f"sha256:{2:064x}"
    assert bundles["manager.10.0.0.9"] == live.bundles["manager.10.0.0.9"]  # untouched


def test_apply_upgrades_all_one_at_a_time_and_stops_at_a_failed_gate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    targets = _targets(tmp_path, HOSTS)
    plan = make_plan(targets, _live(targets, "0.0.9"), "0.1.0")
    events: list[str] = []
    run, records = _run(monkeypatch, plan, events, failing="10.0.0.10")
    with pytest.raises(ManagerUnreachable) as info:
        run.deploy_managers(_bundles(HOSTS), [a.address for a in plan.actions[:3]], True)  # type: ignore[attr-defined]
    assert "manager 10.0.0.10:9000" in str(info.value)
    assert "switched back to release old-10.0.0.1," in str(info.value)  # first 12 characters
    assert [e for e in events if not e.startswith("run")] == [
        "install 10.0.0.9",
        "restart 10.0.0.9",
        "gate 10.0.0.9:9000",
        "record",  # the first is recorded before the second starts
        "install 10.0.0.10",
        "restart 10.0.0.10",
        "gate 10.0.0.10:9000",
        "switch 10.0.0.10 old-10.0.0.10",
        "restart 10.0.0.10",
    ]  # 10.0.0.2 untouched
    applied, failed = records
    assert _resources(applied) == {
        "manager.10.0.0.9": "0.1.0",
        "manager.10.0.0.10": "0.0.9",
        "manager.10.0.0.2": "0.0.9",
    }
    assert failed.status == "failed"
    assert failed.message == "manager.10.0.0.10: failed its health gate"
    # The next plan still upgrades the two that were not.
    after = from_cluster_state(pb.GetClusterStateResponse(serial=8, manager_release=applied))
    again = make_plan(targets, after, "0.1.0")
    assert [a for a, _ in _managers(again.actions)] == ["manager.10.0.0.10", "manager.10.0.0.2"]


def test_apply_removes_an_undeclared_manager_and_drops_it_from_the_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wrctl.deploy.apply import _work

    plan = make_plan(_targets(tmp_path, HOSTS[:2]), _live(_targets(tmp_path, HOSTS)), "0.1.0")
    work = _work(plan)
    assert (work.manager, work.removed_managers) == (False, ("manager.10.0.0.2",))
    events: list[str] = []
    run, records = _run(monkeypatch, plan, events)
    run.remove_manager("manager.10.0.0.2")  # type: ignore[attr-defined]
    assert events == ["remove 10.0.0.2", "record"]
    assert sorted(_resources(records[0])) == ["manager.10.0.0.10", "manager.10.0.0.9"]
    assert "manager.10.0.0.2" not in json.loads(records[0].attributes[MANAGER_BUNDLES])


def test_a_manager_address_names_its_host_for_logs_and_status(tmp_path: Path) -> None:
    from wrctl.commands.status import manager_resources
    from wrctl.config.targets import target_name
    from wrctl.errors import WrctlError

    targets = _targets(tmp_path, HOSTS)
    place = targets.target("manager.10.0.0.10")
    assert (place.host, place.name, target_name("manager.10.0.0.10")) == (
        "10.0.0.10",
        "manager",
        "manager",
    )
    with pytest.raises(WrctlError, match=r"'10\.0\.0\.7' is not a manager host"):
        targets.target("manager.10.0.0.7")
    # status: the address each manager advertises in ListManagers -> its resource
    assert manager_resources(targets.config) == {f"{h}:9000": f"manager.{h}" for h in HOSTS}
    one = _targets(tmp_path, HOSTS[:1])
    assert manager_resources(one.config) == {"10.0.0.9:9000": "manager"}


def test_one_manager_is_recorded_as_before(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    targets = _targets(tmp_path, HOSTS[:1])
    live = _live(targets, "0.0.9")
    plan = make_plan(targets, live, "0.1.0")
    assert _managers(plan.actions) == [("manager", ActionKind.REPLACE)]
    events: list[str] = []
    run, records = _run(monkeypatch, plan, events)
    monkeypatch.setattr(
        type(run), "deploy_manager", lambda self, bundle, *a: events.append("deploy manager")
    )
    run.deploy_managers(_bundles(HOSTS[:1]), ["manager"], record=True)  # type: ignore[attr-defined]
    assert events == ["deploy manager", "record"]
    (record,) = records
    assert (record.target, record.status, record.message) == ("manager", "applied", "")
    assert record.previous_bundle_digest == live.bundles["manager"]
    assert dict(record.attributes) == {
        RESOURCES_KEY: json.dumps([plan.desired.resources["manager"].to_json()], sort_keys=True)
    }

"""[[schedule]] in cluster.toml: validated with file:line errors, planned as `schedule.NAME`
resources against the manager's ListSchedules (same attributes both ways)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.wire import COMPONENT_HEADER
from wrctl.config import load_targets
from wrctl.errors import ConfigError
from wrctl.plan import ActionKind, diff, render_json, render_text, resolve
from wrctl.plan.schedules import live, upsert_request

CLUSTER = """\
[cluster]
name = "shop"

[[node]]
name = "node-a"
host = "local"

[[module]]
namespace = "example"
name = "reports"
version = "1.2.0"
component = "reports.wasm"
"""
NIGHTLY = """
[[schedule]]
name = "nightly-report"
module = "example.reports"
job_type = "build"
cron = "0 3 * * *"
payload = { format = "pdf", pages = 3 }
"""
EVERY_MINUTE = """
[[schedule]]
name = "refresh"
module = "example.reports"
version = "1.2.0"
job_type = "refresh"
interval_secs = 60
payload = '{"full": false}'
max_attempts = 2
"""


def _targets(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    (tmp_path / "reports.wasm").write_bytes(COMPONENT_HEADER + b"reports")
    (tmp_path / "cluster.toml").write_text(text)
    return load_targets(tmp_path / "cluster.toml")


def _live_of(tmp_path: Path, text: str) -> dict[str, object]:
    """Live resources as the manager would list the schedules apply wrote for `text`."""
    targets = _targets(tmp_path, text)
    desired = resolve(targets, "0.1.0")
    out: dict[str, object] = {a: r for a, r in desired.resources.items()}
    for schedule in targets.config.schedule:
        request = upsert_request(schedule)
        listed = pb.Schedule(
            name=request.name,
            worker_namespace=request.worker_namespace,
            worker_name=request.worker_name,
            worker_version=request.worker_version,
            job_type=request.job_type,
            interval_secs=request.interval_secs,
            cron=request.cron,
            payload=request.payload,
            timeout_secs=request.timeout_secs,
            max_attempts=request.max_attempts,
        )
        out[f"schedule.{schedule.name}"] = live(listed)
    return out


def test_schedules_are_created_after_modules_and_round_trip(tmp_path: Path) -> None:
    desired = resolve(_targets(tmp_path, CLUSTER + NIGHTLY + EVERY_MINUTE), "0.1.0")
    empty = replace(desired, resources={})
    actions = diff(desired, empty)
    assert [a.address for a in actions][-3:] == [
        "module.example.reports",
        "schedule.nightly-report",
        "schedule.refresh",
    ]
    text = render_text(actions)
    assert "+ schedule.nightly-report" in text
    nightly = desired.resources["schedule.nightly-report"].attributes
    assert nightly == {
        "module": "example.reports",
        "version": "(any)",
        "job_type": "build",
        "every": "cron 0 3 * * *",
        "payload": '{"format":"pdf","pages":3}',
        "timeout_secs": "30",
        "max_attempts": "(default)",
    }
    assert '"schedule.refresh"' in json.dumps(render_json(actions, 0, "shop"))
    live_state = replace(desired, resources=_live_of(tmp_path, CLUSTER + NIGHTLY + EVERY_MINUTE))
    assert diff(desired, live_state) == []  # what apply wrote reads back unchanged


def test_a_changed_schedule_is_updated_and_a_removed_one_destroyed(tmp_path: Path) -> None:
    live_state = _live_of(tmp_path, CLUSTER + NIGHTLY + EVERY_MINUTE)
    changed = EVERY_MINUTE.replace("interval_secs = 60", "interval_secs = 120")
    desired = resolve(_targets(tmp_path, CLUSTER + changed), "0.1.0")
    actions = {a.address: a for a in diff(desired, replace(desired, resources=live_state))}
    assert actions["schedule.refresh"].kind is ActionKind.UPDATE
    [change] = actions["schedule.refresh"].changes
    assert (change.attribute, change.old, change.new) == ("every", "60s", "120s")
    assert actions["schedule.nightly-report"].kind is ActionKind.DESTROY
    assert "- schedule.nightly-report" in render_text(list(actions.values()))


@pytest.mark.parametrize(
    ("schedule", "where", "problem"),
    [
        (NIGHTLY.replace("example.reports", "example.report"), ":16:1:", "did you mean"),
        (EVERY_MINUTE.replace('version = "1.2.0"', 'version = "1.3.0"'), ":17:1:", "not 1.3.0"),
        (NIGHTLY.replace('cron = "0 3 * * *"', 'cron = "0 3 * *"'), ":", "five fields"),
        (
            NIGHTLY.replace('cron = "0 3 * * *"', "interval_secs = 5\ncron = '* * * * *'"),
            ":",
            "exactly one",
        ),
        (NIGHTLY + NIGHTLY, ":", "duplicate schedule 'nightly-report'"),
        (NIGHTLY.replace('job_type = "build"', 'job_type = "a b"'), ":", "is not a job type"),
        (EVERY_MINUTE.replace("'{\"full\": false}'", "'{nope'"), ":", "payload text is not JSON"),
    ],
)
def test_bad_schedules_name_file_and_line(
    tmp_path: Path, schedule: str, where: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as err:
        _targets(tmp_path, CLUSTER + schedule)
    text = str(err.value)
    assert "cluster.toml" + where in text and problem in text, text

"""What a guest says and answers: statuses outside 200-599 become 502 with the reason,
oversized response headers 500, and its stderr lands in the engine log under its name."""

from __future__ import annotations

import json
import time

import pytest

from tests.infra.process import wait_until
from tests.integration.engine.conftest import Engine, module_toml

pytestmark = pytest.mark.slow

TRACE_ID = "5bf92f3577b34da6a3ce929d0e0e4737"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture
def engine(components, start_engine) -> Engine:  # type: ignore[no-untyped-def]
    engine: Engine = start_engine(module_toml("hostile", components["hostile"]))
    return engine


@pytest.mark.parametrize("code", [0, 100, 101, 199, 600, 65535])
def test_a_status_outside_200_599_is_502_with_the_reason(engine: Engine, code: int) -> None:
    started = time.monotonic()
    status, _, body = engine.call("example.hostile", "/status", str(code).encode(), timeout=5)
    assert status == 502
    assert body == f"module example.hostile answered with status {code}, outside 200-599".encode()
    assert time.monotonic() - started < 2
    assert engine.call("example.hostile", "/status", b"299")[0] == 299  # in range: as it is


def test_oversized_response_headers_are_500(engine: Engine) -> None:
    status, _, body = engine.call("example.hostile", "/headers", json.dumps({"kib": 100}).encode())
    assert status == 500
    assert body.startswith(b"module example.hostile: response headers of 10")


def _guest_lines(engine: Engine, trace_id: str) -> list[dict[str, object]]:
    return [r for r in engine.log_records() if r.get("trace_id") == trace_id]


def test_stderr_is_logged_with_module_version_and_trace_id(engine: Engine) -> None:
    lines = ["hello from the guest", "a second line"]
    status, _, _ = engine.call(
        "example.hostile",
        "/stderr",
        json.dumps({"lines": lines}).encode(),
        headers={"traceparent": TRACEPARENT},
    )
    assert status == 200
    records = wait_until(
        lambda: len(_guest_lines(engine, TRACE_ID)) >= 2 and _guest_lines(engine, TRACE_ID),
        10,
        "the guest's stderr lines in the engine log",
    )
    assert [r["msg"] for r in records] == lines
    for record in records:
        assert record["wr_module"] == "example.hostile"
        assert record["version"] == "1.0.0"
        assert record["stream"] == "stderr"
    raw = engine.process.log_path.read_text()
    assert "\nhello from the guest\n" not in raw  # never as a bare, unattributed line


def test_a_chatty_guest_is_held_to_its_log_budget(engine: Engine) -> None:
    trace_id = "6bf92f3577b34da6a3ce929d0e0e4738"
    spec = {"lines": ["x" * 100], "repeat": 5000}  # 500 KB of stderr
    headers = {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    status, _, _ = engine.call(
        "example.hostile", "/stderr", json.dumps(spec).encode(), headers=headers
    )
    assert status == 200
    records = wait_until(
        lambda: (
            [r for r in _guest_lines(engine, trace_id) if r["stream"] == "engine"]
            and _guest_lines(engine, trace_id)
        ),
        10,
        "the log budget notice",
    )
    logged = sum(len(str(r["msg"])) for r in records if r["stream"] == "stderr")
    assert 32_000 < logged <= 64 * 1024
    assert "guest log budget of 65536 bytes per request spent" in str(records[-1]["msg"])

"""Misbehaving guests: deadline -> 504, memory limit -> 500, trap -> 500; the engine serves on."""

from __future__ import annotations

import threading
import time

import pytest

from tests.integration.engine.conftest import module_toml

pytestmark = pytest.mark.slow


def test_busy_loop_gets_504_within_deadline_while_others_are_served(  # type: ignore[no-untyped-def]
    components, start_engine
) -> None:
    engine = start_engine(
        module_toml("testkit", components["testkit"], request_timeout_secs=1), workers=2
    )
    result: dict[str, object] = {}

    def spin() -> None:
        started = time.monotonic()
        status, _, body = engine.call("example.testkit", "/spin", timeout=10)
        result.update(status=status, body=body, seconds=time.monotonic() - started)

    spinner = threading.Thread(target=spin)
    spinner.start()
    served = 0
    while spinner.is_alive() and served < 200:
        status, _, body = engine.call("example.testkit", "/echo", b"ping", timeout=5)
        assert (status, body) == (200, b"ping")
        served += 1
    spinner.join(10)
    assert result["status"] == 504, result
    assert b"deadline of 1 s exceeded" in result["body"]  # type: ignore[operator]
    assert result["seconds"] < 1 + 1  # type: ignore[operator]
    assert served > 0
    status, _, _ = engine.call("example.testkit", "/echo", b"after")
    assert status == 200


def test_allocating_past_the_memory_limit_is_500(components, start_engine) -> None:  # type: ignore[no-untyped-def]
    engine = start_engine(module_toml("testkit", components["testkit"], memory_limit_mb=64))
    status, _, body = engine.call("example.testkit", "/alloc")
    assert status == 500
    assert b"memory" in body.lower()
    assert engine.call("example.testkit", "/echo", b"still here")[0] == 200


def test_trap_is_500_with_a_reason_and_the_engine_lives_on(components, start_engine) -> None:  # type: ignore[no-untyped-def]
    engine = start_engine(module_toml("testkit", components["testkit"]))
    status, _, body = engine.call("example.testkit", "/trap")
    assert status == 500
    assert body.startswith(b"module example.testkit trapped:")
    assert len(body) < 300
    assert engine.process.running
    status, _, body = engine.call("example.testkit", "/echo", b"x")
    assert (status, body) == (200, b"x")


def test_a_worker_that_dies_is_replaced(components, start_engine) -> None:  # type: ignore[no-untyped-def]
    import os
    import signal
    from pathlib import Path

    from tests.infra.process import wait_until

    engine = start_engine(module_toml("testkit", components["testkit"]), workers=1)
    pid = engine.process.pid

    def workers() -> list[int]:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    (victim,) = workers()
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: workers() and workers() != [victim], 30, "a replacement worker")
    status, _, body = engine.call("example.testkit", "/echo", b"back")
    assert (status, body) == (200, b"back")

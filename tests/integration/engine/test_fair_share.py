"""One module's busy requests cannot stop the others: each module has a share of the workers,
requests beyond it wait (with the deadline), and the others keep being served."""

from __future__ import annotations

import statistics
import threading
import time

import pytest

from tests.infra.process import wait_until
from tests.integration.engine.conftest import Engine, module_toml

pytestmark = pytest.mark.slow


def _echo_seconds(engine: Engine, count: int) -> list[float]:
    times = []
    for i in range(count):
        started = time.monotonic()
        status, _, body = engine.call("example.quick", "/echo", f"q{i}".encode(), timeout=10)
        times.append(time.monotonic() - started)
        assert (status, body) == (200, f"q{i}".encode())
    return times


def _load(engine: Engine, module: str) -> dict[str, int]:
    load: dict[str, int] = engine.health()["load"][module]
    return load


def test_a_busy_module_does_not_stop_the_others(components, start_engine) -> None:  # type: ignore[no-untyped-def]
    wasm = components["testkit"]
    engine: Engine = start_engine(
        module_toml("busy", wasm, request_timeout_secs=4) + module_toml("quick", wasm), workers=2
    )
    before = statistics.median(_echo_seconds(engine, 20))
    workers = engine.worker_pids()
    assert _load(engine, "example.busy")["share"] == 1  # 2 workers, 2 modules

    results: list[int] = []

    def spin() -> None:
        results.append(engine.call("example.busy", "/spin", timeout=15)[0])

    spinners = [threading.Thread(target=spin) for _ in range(3)]
    for t in spinners:
        t.start()
    # Two spin on the two idle workers; the third is over the module's share and waits.
    wait_until(
        lambda: _load(engine, "example.busy") == {"share": 1, "running": 2, "waiting": 1},
        10,
        "two busy requests running and one waiting",
    )
    during = _echo_seconds(engine, 20)
    # Sharing a busy worker's CPU makes echo slower, but it is served: before the share it
    # waited for a spinner's deadline.
    assert max(during) < 1.0, during
    assert _load(engine, "example.busy")["running"] == 2  # the spinners were still at it
    for t in spinners:
        t.join(20)
    # The waiting one's deadline ran while it waited: it is answered when the others are,
    # and no worker had to be killed for overrunning.
    assert results == [504, 504, 504]
    assert engine.worker_pids() == workers
    after = statistics.median(_echo_seconds(engine, 20))
    assert after < max(5 * before, 0.05), (before, after)

"""Good traffic alongside every hostile guest at once: it keeps being answered, and once the
attack is over the engine answers with its usual latency."""

from __future__ import annotations

import json
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.engine.conftest import Engine, StubProxy, module_toml

pytestmark = pytest.mark.slow

ATTACKS: list[tuple[str, object]] = [
    ("/stdout", {"mib": 1000}),
    ("/io", {"mib": 1000, "files": 20}),
    ("/io", {"empty": 100_000}),
    ("/stderr", {"lines": ["e" * 4000], "repeat": 100_000}),
    ("/status", 100),
    ("/status", 0),
    ("/headers", {"kib": 200}),
    ("/call", {"url": "http://rt.sink/a b"}),
    ("/call", {"url": "http://example.quick/x", "headers": [["x", "a\nb"]]}),
    ("/spin", {}),
]


def _good(engine: Engine, count: int) -> list[float]:
    times = []
    for i in range(count):
        started = time.monotonic()
        status, _, body = engine.call("example.quick", "/echo", b"good %d" % i, timeout=10)
        times.append(time.monotonic() - started)
        assert (status, body) == (200, b"good %d" % i)
    return times


def test_good_traffic_is_served_through_an_attack(  # type: ignore[no-untyped-def]
    components, start_engine, stub_proxy: StubProxy
) -> None:
    engine: Engine = start_engine(
        module_toml("hostile", components["hostile"], request_timeout_secs=3)
        + module_toml("quick", components["testkit"])
        + module_toml("spinner", components["testkit"], request_timeout_secs=3),
        workers=2,
        proxy=stub_proxy.address,
    )
    stub_proxy.engine_base = engine.base
    before = statistics.median(_good(engine, 30))

    def attack(item: tuple[str, object]) -> int:
        route, spec = item
        module = "example.spinner" if route == "/spin" else "example.hostile"
        return engine.call(module, route, json.dumps(spec).encode(), timeout=30)[0]

    during: list[float] = []
    done = threading.Event()

    def good_traffic() -> None:
        while not done.is_set():
            during.extend(_good(engine, 1))

    with ThreadPoolExecutor(len(ATTACKS) * 2 + 1) as pool:
        watcher = pool.submit(good_traffic)
        statuses = list(pool.map(attack, ATTACKS * 2))
        done.set()
        watcher.result()
    # Each attack is refused (500/502), stopped (504) or, for the bad calls, answered by the
    # guest that caught its InvalidCallError (200); the engine itself never failed.
    assert set(statuses) <= {200, 500, 502, 504}, statuses
    assert len(during) > 10
    assert statistics.median(during) < 0.5, sorted(during)
    after = statistics.median(_good(engine, 30))
    assert after < max(3 * before, 0.02), (before, after)
    assert engine.health()["workers"] == 2

"""Calls between modules of one engine with one worker complete without deadlock: a chain of
four modules (each parked while the next runs), and fan-out (one request making 8 calls, and
8 concurrent requests that each call another module)."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.integration.engine.conftest import StubProxy, module_toml

HOPS = ["a", "b", "c", "d"]


def _testkits(wasm: Path) -> str:
    return "".join(
        module_toml(name, wasm, env={"NAME": json.dumps(name)}) for name in [*HOPS, "echo"]
    )


def test_chain_of_four_on_one_worker_completes(  # type: ignore[no-untyped-def]
    components, start_engine, stub_proxy: StubProxy
) -> None:
    engine = start_engine(_testkits(components["testkit"]), workers=1, proxy=stub_proxy.address)
    stub_proxy.engine_base = engine.base
    rest = json.dumps([f"example.{h}" for h in HOPS[1:]]).encode()
    for _ in range(3):  # and again: every hop's instance is fresh each time
        status, _, body = engine.call("example.a", "/chain", rest)
        assert (status, body) == (200, b"a>b>c>d")


def test_fan_out_of_eight_on_one_worker_completes(  # type: ignore[no-untyped-def]
    components, start_engine, stub_proxy: StubProxy
) -> None:
    engine = start_engine(_testkits(components["testkit"]), workers=1, proxy=stub_proxy.address)
    stub_proxy.engine_base = engine.base
    # one request, 8 calls (a guest's send blocks: they go one after another)
    spec = json.dumps({"url": "http://example.echo/echo", "n": 8}).encode()
    status, _, body = engine.call("example.a", "/fanout", spec)
    assert status == 200, body
    assert json.loads(body) == {"statuses": [200] * 8, "bodies": [str(i) for i in range(8)]}

    # 8 concurrent requests, each parked in a call that the same worker must serve (16 of
    # the worker's 16 threads: deeper chains than this stall until their deadline)
    def one(i: int) -> tuple[int, bytes]:
        status, _, body = engine.call("example.a", "/chain", b'["example.b"]')
        return status, body

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert results == [(200, b"a>b")] * 8


def test_chains_deeper_than_the_threads_complete_or_are_refused_at_once(  # type: ignore[no-untyped-def]
    components, start_engine, stub_proxy: StubProxy
) -> None:
    """8 concurrent chains a>b>c hold 24 requests on one worker, more than its 16 threads:
    the calls back into the engine use its overflow threads and all complete. 12 such chains
    (36 > 2 x 16) cannot all be held: some are refused at once with 503, none waits for its
    deadline (504)."""
    engine = start_engine(_testkits(components["testkit"]), workers=1, proxy=stub_proxy.address)
    stub_proxy.engine_base = engine.base

    def one(_: int) -> tuple[int, bytes]:
        status, _, body = engine.call("example.a", "/chain", b'["example.b", "example.c"]')
        return status, body

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(8))) == [(200, b"a>b>c")] * 8
    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(one, range(12)))
    # a chain refused on the way answers the saturation 503 (its callers pass the status
    # up), never a timeout: nothing waits for its deadline
    for status, body in results:
        assert (status, body) == (200, b"a>b>c") or (
            status == 503 and b"waits in a call to it" in body
        ), (status, body)

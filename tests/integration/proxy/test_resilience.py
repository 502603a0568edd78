"""Circuit breaker, retries on connection errors, request deadline and stale pooled connections."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

from tests.infra.process import free_port, wait_until
from tests.integration.proxy.support import (
    BackgroundLoop,
    Engine,
    FakeManager,
    Hangup,
    ProxyProcess,
    external_toml,
    public_request,
    rule,
)

DEST = "http://example.echo/pkg.Echo/Say"
FAST_BREAKER = "[circuit_breaker]\nfailure_threshold = 5\nopen_duration_secs = 1"


def test_breaker_opens_after_five_failures_then_probes(
    manager: FakeManager, fresh_engines: list[Engine], start_proxy: Callable[..., ProxyProcess]
) -> None:
    bad, good = fresh_engines[0], fresh_engines[1]
    bad.status = 500
    proxy = start_proxy(extra_toml=FAST_BREAKER)
    proxy.wait_table(manager.set_rules([rule(bad), rule(good)]))
    served = Counter(json.loads(proxy.request(DEST)[2])["engine"] for _ in range(20))
    assert served["engine-0"] == 5  # skipped once its breaker opened
    assert served["engine-1"] == 15
    assert proxy.sample("wr_proxy_circuit_breaker_state", upstream=bad.address) == 1.0
    assert proxy.health()["breakers"][bad.address] == {"example.echo@1.0.0": "open"}

    # With the failing instance alone, requests are refused while its breaker is open.
    proxy.wait_table(manager.set_rules([rule(bad)]))
    status, headers, body = proxy.request(DEST)
    assert status == 503 and b"circuit open" in body
    assert 1 <= int(headers["retry-after"]) <= 1

    # After open_duration one probe goes through; its success closes the breaker.
    bad.status = 200
    wait_until(lambda: proxy.request(DEST)[0] == 200, 3, "the half-open probe to succeed")
    assert proxy.health()["breakers"][bad.address] == {"example.echo@1.0.0": "closed"}
    assert proxy.sample("wr_proxy_circuit_breaker_state", upstream=bad.address) == 0.0


def test_connection_refused_is_retried_on_another_instance(
    manager: FakeManager, fresh_engines: list[Engine], shared_proxy: ProxyProcess
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    shared_proxy.wait_table(manager.set_rules([rule(dead), rule(fresh_engines[0])]))
    for method, body in (("GET", None), ("POST", b"payload")):  # the request never left
        for _ in range(4):
            status, _, answer = shared_proxy.request(DEST, method=method, body=body)
            assert status == 200, answer
    assert len(fresh_engines[0].requests) == 8


def test_dropped_connection_retried_only_when_safe(
    manager: FakeManager,
    fresh_engines: list[Engine],
    shared_proxy: ProxyProcess,
    background: BackgroundLoop,
) -> None:
    hangup = Hangup()
    background.run(hangup.start())
    try:
        shared_proxy.wait_table(
            manager.set_rules([rule(hangup, rule_id="a"), rule(fresh_engines[0], rule_id="b")])
        )
        # Idempotent: the proxy tries the other instance, the client sees a success.
        assert all(shared_proxy.request(DEST)[0] == 200 for _ in range(4))
        assert any(r.startswith(b"GET") for r in hangup.requests)  # so retries happened
        # A POST with a body that reached an upstream is not replayed: 502.
        outcomes = Counter(
            shared_proxy.request(DEST, method="POST", body=b"once")[0] for _ in range(2)
        )
        posts_at_hangup = [r for r in hangup.requests if r.startswith(b"POST")]
        assert outcomes[502] == len(posts_at_hangup) >= 1
        assert outcomes[200] + outcomes[502] == 2
    finally:
        background.run(hangup.stop())


def test_request_deadline_gives_504(
    manager: FakeManager, fresh_engines: list[Engine], start_proxy: Callable[..., ProxyProcess]
) -> None:
    slow = fresh_engines[0]
    slow.delay = 3.0
    proxy = start_proxy(request_timeout_secs=0.5)
    proxy.wait_table(manager.set_rules([rule(slow)]))
    started = time.monotonic()
    status, _, body = proxy.request(DEST)
    elapsed = time.monotonic() - started
    assert status == 504 and b"did not answer within 0.5 s" in body
    assert 0.4 < elapsed < 2.0


def test_stale_pooled_connection_after_upstream_restart(
    manager: FakeManager,
    fresh_engines: list[Engine],
    shared_proxy: ProxyProcess,
    background: BackgroundLoop,
) -> None:
    engine = fresh_engines[2]
    shared_proxy.wait_table(manager.set_rules([rule(engine)]))
    assert shared_proxy.request(DEST)[0] == 200  # leaves a pooled connection behind
    background.run(engine.stop())
    background.run(engine.start())
    for method in ("GET", "POST"):  # bodiless: safe to resend on a fresh connection
        status, _, body = shared_proxy.request(DEST, method=method)
        assert status == 200, body


def test_sigterm_lets_requests_in_flight_finish(
    manager: FakeManager, fresh_engines: list[Engine], start_proxy: Callable[..., ProxyProcess]
) -> None:
    import threading

    slow = fresh_engines[0]
    slow.delay = 1.0
    proxy = start_proxy()
    proxy.wait_table(manager.set_rules([rule(slow)]))
    outcome: list[int] = []
    caller = threading.Thread(target=lambda: outcome.append(proxy.request(DEST)[0]))
    caller.start()
    wait_until(lambda: slow.requests, 5, "the request to reach the engine")
    assert proxy.process.stop() == 0
    caller.join(10)
    assert outcome == [200]


def test_upstream_sending_two_responses_is_not_pooled(
    manager: FakeManager,
    fresh_engines: list[Engine],
    shared_proxy: ProxyProcess,
    background: BackgroundLoop,
) -> None:
    import asyncio

    port = free_port()
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            writer.write(answer + answer)  # one request, two responses
            await writer.drain()
        writer.close()

    async def start() -> asyncio.Server:
        return await asyncio.start_server(serve, "127.0.0.1", port)

    server = background.run(start())
    try:
        shared_proxy.wait_table(manager.set_rules([rule(f"http://127.0.0.1:{port}")]))
        before = shared_proxy.sample("wr_proxy_upstream_connects_total")
        for _ in range(3):  # each on a fresh upstream connection: the broken one is dropped
            status, _, body = shared_proxy.request(DEST)
            assert (status, body) == (200, b"ok")
        assert shared_proxy.sample("wr_proxy_upstream_connects_total") - before == 3
    finally:
        server.close()


def test_a_failing_module_never_opens_the_breaker_of_its_neighbours(
    manager: FakeManager, fresh_engines: list[Engine], start_proxy: Callable[..., ProxyProcess]
) -> None:
    """Five 500s from echo open echo's breaker on that engine, and only that one: another
    module on the same engine goes on being served, by its public route too."""
    engine = fresh_engines[0]
    engine.failing.add("echo")
    public = free_port()
    proxy = start_proxy(extra_toml=external_toml(public, [("/pkg.Other/Get", "example", "other")]))
    proxy.wait_table(manager.set_rules([rule(engine), rule(engine, module="other")]))
    assert [proxy.request(DEST)[0] for _ in range(5)] == [500] * 5
    status, headers, body = proxy.request(DEST)
    assert status == 503 and b"circuit open for every instance of example.echo" in body
    assert "retry-after" in headers
    for _ in range(10):  # its neighbour on the same engine is served, inside and out
        assert proxy.request("http://example.other/pkg.Other/Get")[0] == 200
        assert public_request(public, "GET", "/pkg.Other/Get")[0] == 200
    assert proxy.health()["breakers"][engine.address] == {
        "example.echo@1.0.0": "open",
        "example.other@1.0.0": "closed",
    }
    state = "wr_proxy_circuit_breaker_state"
    labels = {"upstream": engine.address, "version": "1.0.0"}
    assert proxy.sample(state, destination="example.echo", **labels) == 1.0
    assert proxy.sample(state, destination="example.other", **labels) == 0.0
    # A rule that leaves the table takes its breaker and its series along.
    proxy.wait_table(manager.set_rules([rule(engine, module="other")]))
    assert proxy.sample(state, destination="example.echo") is None
    assert proxy.health()["breakers"][engine.address] == {"example.other@1.0.0": "closed"}


def test_slow_request_bodies_get_408_and_do_not_open_the_breaker(
    manager: FakeManager, fresh_engines: list[Engine], start_proxy: Callable[..., ProxyProcess]
) -> None:
    """A client that stops sending its body is the client's problem, not the module's: five of
    them must not open the module's breaker for everyone else."""
    import socket

    proxy = start_proxy(extra_toml=FAST_BREAKER, request_timeout_secs=0.5)
    proxy.wait_table(manager.set_rules([rule(fresh_engines[0])]))
    head = (
        b"POST /pkg.Echo/Say HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n"
        b"x-wr-destination: " + DEST.encode() + b"\r\n\r\nonly part of it"
    )
    stalled = [socket.create_connection(("127.0.0.1", proxy.port), timeout=10) for _ in range(6)]
    try:
        for sock in stalled:
            sock.sendall(head)
        answers = []
        for sock in stalled:
            data = b""
            while chunk := sock.recv(65536):  # the proxy answers, then closes
                data += chunk
            answers.append(data)
    finally:
        for sock in stalled:
            sock.close()
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), answers
    assert all(b"the request body did not arrive within 0.5 s" in a for a in answers)
    assert proxy.request(DEST)[0] == 200
    assert proxy.health()["breakers"][fresh_engines[0].address] == {"example.echo@1.0.0": "closed"}

"""Routing through a real wr-proxy: headers, round robin, versions, errors, table refresh."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable

import pytest

from tests.infra.process import wait_until
from tests.integration.proxy.support import (
    Engine,
    FakeManager,
    ProxyProcess,
    raw_exchange,
    rule,
)

DEST = "http://example.echo/pkg.Echo/Say"


def _engine_of(body: bytes) -> str:
    return str(json.loads(body)["engine"])


def test_delivery_sets_and_strips_routing_headers(
    manager: FakeManager, fresh_engines: list[Engine], shared_proxy: ProxyProcess
) -> None:
    version = manager.set_rules([rule(fresh_engines[0])])
    proxy = shared_proxy
    proxy.wait_table(version)
    status, _, body = proxy.request(
        DEST,
        method="POST",
        body=b"hi",
        headers={"x-wr-source": "caller", "x-wr-source-ns": "shop", "x-custom": "kept"},
    )
    assert status == 200, body
    seen = json.loads(body)
    headers = seen["headers"]
    assert seen["path"] == "/pkg.Echo/Say" and seen["body_size"] == 2
    assert headers["x-wr-module"] == "echo"
    assert headers["x-wr-namespace"] == "example"
    assert headers["x-wr-version"] == "1.0.0"
    assert headers["x-wr-via-proxy"] == "node-a"
    assert headers["x-custom"] == "kept"
    for stripped in ("x-wr-destination", "x-wr-source", "x-wr-source-ns"):
        assert stripped not in headers


def test_round_robin_across_instances(
    manager: FakeManager, fresh_engines: list[Engine], shared_proxy: ProxyProcess
) -> None:
    version = manager.set_rules([rule(e) for e in fresh_engines])
    proxy = shared_proxy
    proxy.wait_table(version)
    served = Counter(_engine_of(proxy.request(DEST)[2]) for _ in range(30))
    assert served == {"engine-0": 10, "engine-1": 10, "engine-2": 10}


def test_version_requirements_pick_the_highest_match(
    manager: FakeManager, fresh_engines: list[Engine], shared_proxy: ProxyProcess
) -> None:
    e0, e1, e2 = fresh_engines
    version = manager.set_rules(
        [rule(e0, version="1.2.0"), rule(e1, version="1.4.1"), rule(e2, version="2.0.0")]
    )
    proxy = shared_proxy
    proxy.wait_table(version)
    expected = {
        "^1.2": ("engine-1", "1.4.1"),
        "~1.2": ("engine-0", "1.2.0"),
        ">=1.0,<2": ("engine-1", "1.4.1"),
        "1.2.0": ("engine-0", "1.2.0"),
        "^2": ("engine-2", "2.0.0"),
        "*": ("engine-2", "2.0.0"),
    }
    for requirement, (engine, resolved) in expected.items():
        status, _, body = proxy.request(DEST, headers={"x-wr-version": requirement})
        assert status == 200, (requirement, body)
        seen = json.loads(body)
        assert (seen["engine"], seen["headers"]["x-wr-version"]) == (engine, resolved), requirement
    status, _, body = proxy.request(DEST, headers={"x-wr-version": "^3"})
    assert status == 503 and b"matching '^3'" in body
    status, _, body = proxy.request(DEST, headers={"x-wr-version": "one.two"})
    assert status == 400 and b"x-wr-version" in body
    # Without a requirement every healthy version takes turns.
    served = {_engine_of(proxy.request(DEST)[2]) for _ in range(6)}
    assert served == {"engine-0", "engine-1", "engine-2"}


def test_error_statuses(
    manager: FakeManager, fresh_engines: list[Engine], shared_proxy: ProxyProcess
) -> None:
    version = manager.set_rules(
        [rule(fresh_engines[0]), rule(fresh_engines[1], module="down", healthy=False)]
    )
    proxy = shared_proxy
    proxy.wait_table(version)
    cases = {
        None: (400, b"missing x-wr-destination"),
        "example.echo/x": (400, b"must be an http"),
        "http://Bad_Name.echo/x": (400, b"not a valid host"),
        "http://example.nothing/x": (404, b"unknown module example.nothing"),
        "http://example.down/x": (503, b"no healthy instance of example.down"),
    }
    for destination, (want_status, want_reason) in cases.items():
        status, headers, body = proxy.request(destination)
        assert status == want_status, (destination, body)
        assert want_reason in body, (destination, body)
        assert "x-wr-proxy-error" in headers


def test_table_changes_are_visible_within_a_second(
    manager: FakeManager, fresh_engines: list[Engine], start_proxy: Callable[..., ProxyProcess]
) -> None:
    manager.set_rules([rule(fresh_engines[0])])
    proxy = start_proxy(extra_toml="[cache]\nrouting_table_poll_ms = 500")
    wait_until(lambda: proxy.request(DEST)[0] == 200, 5, "the first table")
    manager.set_rules([rule(fresh_engines[1])])
    changed_at = time.monotonic()
    wait_until(
        lambda: _engine_of(proxy.request(DEST)[2]) == "engine-1", 1.0, "the new table in use"
    )
    assert time.monotonic() - changed_at < 1.0
    # Polls carry the version the proxy already has, so unchanged tables are not resent.
    assert any(known > 0 for known in manager.known_versions)


def test_loop_guard_refuses_a_request_that_passed_this_node(
    manager: FakeManager, fresh_engines: list[Engine], shared_proxy: ProxyProcess
) -> None:
    version = manager.set_rules([rule(fresh_engines[0])])
    proxy = shared_proxy
    proxy.wait_table(version)
    status, _, body = proxy.request(DEST, headers={"x-wr-via-proxy": "node-b, node-a"})
    assert status == 508 and b"loop detected" in body
    status, _, body = proxy.request(DEST, headers={"x-wr-via-proxy": "node-b"})
    assert status == 200
    assert json.loads(body)["headers"]["x-wr-via-proxy"] == "node-b, node-a"


def test_concurrent_clients_get_their_own_answers(
    manager: FakeManager, fresh_engines: list[Engine], shared_proxy: ProxyProcess
) -> None:
    """Many keep-alive clients at once over pooled upstream connections: no cross-talk."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor

    shared_proxy.wait_table(manager.set_rules([rule(e) for e in fresh_engines]))
    destination = "http://example.echo/stream/echo"

    def client(n: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", shared_proxy.port, timeout=30)
        try:
            for i in range(60):
                body = f"client {n} request {i} ".encode() * (1 + (n * 7 + i) % 50)
                conn.request(
                    "POST", "/stream/echo", body=body, headers={"x-wr-destination": destination}
                )
                response = conn.getresponse()
                assert response.status == 200
                assert response.read() == body, (n, i)
            return 60
        finally:
            conn.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sum(pool.map(client, range(8))) == 480


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        (b"/a b", b"0x20 at offset 2"),
        (b"/a\tb", b"0x09"),
        (b"/caf\xc3\xa9", b"0xc3"),
        (b"/\x80", b"0x80"),
    ],
)
def test_destination_path_that_cannot_be_a_request_target_gets_400(
    manager: FakeManager,
    fresh_engines: list[Engine],
    shared_proxy: ProxyProcess,
    path: bytes,
    shown: bytes,
) -> None:
    shared_proxy.wait_table(manager.set_rules([rule(fresh_engines[0])]))
    answer = raw_exchange(
        shared_proxy.port,
        b"GET /x HTTP/1.1\r\nhost: x\r\nx-wr-destination: http://example.echo%s\r\n\r\n" % path,
        until=b"percent-encode",
    )
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert b"byte " + shown in answer and b"percent-encode it" in answer
    assert fresh_engines[0].requests == []  # never `GET /a b HTTP/1.1` upstream
    status, _, body = shared_proxy.request("http://example.echo/a%20b")
    assert status == 200 and json.loads(body)["path"] == "/a%20b"


def test_destination_without_namespace_gets_400_naming_the_shape(
    manager: FakeManager, fresh_engines: list[Engine], shared_proxy: ProxyProcess
) -> None:
    shared_proxy.wait_table(manager.set_rules([rule(fresh_engines[0])]))
    for destination in ("http://some-service/rpc", "http://some-service:8080/rpc"):
        status, _, body = shared_proxy.request(destination)
        assert status == 400, (destination, body)
        assert b"names no namespace" in body
        assert b"http://{namespace}.{module}/{pkg}.{Service}/{Method}" in body
        assert b"http://NAMESPACE.some-service/rpc" in body
    # A host with a domain is an external one: the egress allowlist decides (403 here).
    status, _, body = shared_proxy.request("http://api.example.com/rpc")
    assert status == 403 and b"egress" in body

"""Real components behind a real wr-engine: echo, caller -> proxy -> echo, isolation, config."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integration.engine.conftest import TRACING, StubProxy, module_toml

pytestmark = pytest.mark.slow

# Generated in the test from the example's .proto, like a client of the echo module would.
from wr_sdk.codegen import generate_messages  # noqa: E402

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_TRACE = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def echo_pb2(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import importlib.util

    out = tmp_path_factory.mktemp("pb2")
    path = generate_messages(Path(__file__).parents[3] / "examples/echo/schemas/echo.proto", out)
    spec = importlib.util.spec_from_file_location("echo_pb2_for_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_echo_returns_the_message(components, start_engine, echo_pb2) -> None:  # type: ignore[no-untyped-def]
    engine = start_engine(module_toml("echo", components["echo"], capabilities=TRACING))
    body = echo_pb2.EchoRequest(message="hello, wasm").SerializeToString()
    status, headers, reply = engine.call("example.echo", "/echo.EchoService/Echo", body)
    assert status == 200, reply
    assert headers["content-type"] == "application/x-protobuf"
    assert echo_pb2.EchoResponse.FromString(reply).message == "hello, wasm"
    # Without the proxy's headers, the path selects the module and the guest sees the rest.
    from tests.integration.engine.conftest import http_call

    status, _, reply = http_call(engine.base, "POST", "/example.echo/echo.EchoService/Echo", body)
    assert status == 200
    assert echo_pb2.EchoResponse.FromString(reply).message == "hello, wasm"


def test_unknown_module_and_route_are_404(components, start_engine) -> None:  # type: ignore[no-untyped-def]
    engine = start_engine(module_toml("echo", components["echo"], capabilities=TRACING))
    status, _, body = engine.call("example.nope", "/x")
    assert status == 404
    assert b"unknown module 'example.nope'" in body and b"example.echo" in body
    status, _, body = engine.call("example.echo", "/echo.EchoService/Nope")
    assert status == 404
    assert b"no route for /echo.EchoService/Nope" in body


def test_headers_cross_both_ways_in_order(components, start_engine) -> None:  # type: ignore[no-untyped-def]
    import http.client
    from urllib.parse import urlsplit

    engine = start_engine(module_toml("testkit", components["testkit"]))
    parts = urlsplit(engine.base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.putrequest("POST", "/headers", skip_host=True, skip_accept_encoding=True)
        for name, value in [
            ("x-wr-module", "testkit"),
            ("x-wr-namespace", "example"),
            ("X-Multi", "a"),
            ("x-multi", "b"),
            ("x-empty", ""),
            ("content-length", "0"),
        ]:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        seen = json.loads(resp.read())
        assert resp.status == 201
        assert resp.getheader("content-type") == "application/json"
        assert [v for k, v in resp.getheaders() if k.lower() == "x-multi"] == ["1", "2"]
    finally:
        conn.close()
    # Names reach the guest lower-cased, repeats kept, in arrival order.
    pairs = [tuple(p) for p in seen]
    assert [p for p in pairs if p[0] == "x-multi"] == [("x-multi", "a"), ("x-multi", "b")]
    assert ("x-empty", "") in pairs


@pytest.mark.parametrize("size", [100, 64 * 1024 + 7, 3 * 1024 * 1024])
def test_bodies_of_any_size_cross_intact(components, start_engine, size: int) -> None:  # type: ignore[no-untyped-def]
    engine = start_engine(module_toml("testkit", components["testkit"]))
    body = hashlib.sha256(b"seed").digest() * (size // 32 + 1)
    body = body[:size]
    status, _, reply = engine.call("example.testkit", "/echo", body)
    assert status == 200
    assert len(reply) == size
    assert reply == body


def test_caller_reaches_echo_through_the_proxy(  # type: ignore[no-untyped-def]
    components, start_engine, stub_proxy: StubProxy
) -> None:
    # One worker: the caller's request is parked while it waits, so echo still gets served.
    engine = start_engine(
        module_toml("echo", components["echo"], capabilities=TRACING)
        + module_toml("caller", components["caller"], capabilities=TRACING),
        workers=1,
        proxy=stub_proxy.address,
    )
    stub_proxy.engine_base = engine.base
    status, _, reply = engine.call(
        "example.caller", "/run", b"hello", headers={"traceparent": INCOMING_TRACE}
    )
    assert status == 200, reply
    assert json.loads(reply) == {"reply": "hello"}
    assert len(stub_proxy.seen) == 1
    seen = stub_proxy.seen[0]
    assert seen.path == "/echo.EchoService/Echo"
    assert seen.headers["x-wr-destination"] == "http://example.echo/echo.EchoService/Echo"
    assert seen.headers["x-wr-source"] == "caller"
    assert seen.headers["x-wr-source-ns"] == "example"
    assert seen.headers["content-type"] == "application/x-protobuf"
    assert "x-wr-version" not in seen.headers
    # Tracing is off in this engine: the caller's context is forwarded as it came.
    assert seen.headers["traceparent"] == INCOMING_TRACE


def test_outbound_external_call_with_large_body(  # type: ignore[no-untyped-def]
    components, start_engine, stub_proxy: StubProxy
) -> None:
    engine = start_engine(module_toml("testkit", components["testkit"]), proxy=stub_proxy.address)
    size = 2 * 1024 * 1024 + 3
    spec = {"url": "https://api.example.com/v1/thing?q=1", "size": size, "version": "^1.2"}
    status, _, reply = engine.call("example.testkit", "/call", json.dumps(spec).encode())
    assert status == 200, reply[:200]
    assert reply == bytes(i % 251 for i in range(size))
    seen = stub_proxy.seen[0]
    assert seen.path == "/v1/thing?q=1"
    assert seen.body_size == size
    assert seen.headers["x-wr-destination"] == spec["url"]
    assert seen.headers["x-wr-version"] == "^1.2"
    assert seen.headers["x-wr-source"] == "testkit"  # the guest's spoofed value is dropped
    assert seen.headers["x-custom"] == "yes"
    assert seen.headers["host"] == "api.example.com"


def test_outbound_error_reaches_the_guest(components, start_engine) -> None:  # type: ignore[no-untyped-def]
    # Nothing listens on port 9: the guest's call raises CallError -> its handler fails -> 500.
    engine = start_engine(module_toml("testkit", components["testkit"]))
    spec = {"url": "http://example.echo/x"}
    status, _, reply = engine.call("example.testkit", "/call", json.dumps(spec).encode())
    assert status == 500
    assert b"CallError" in reply and b"proxy unreachable" in reply


def test_concurrent_requests_do_not_share_state(components, start_engine) -> None:  # type: ignore[no-untyped-def]
    engine = start_engine(module_toml("testkit", components["testkit"]), workers=2)

    def one(i: int) -> dict[str, object]:
        status, _, body = engine.call("example.testkit", "/state", headers={"x-token": f"t{i}"})
        assert status == 200
        result: dict[str, object] = json.loads(body)
        return result

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(40)))
    assert [r["before"] for r in results] == [0] * 40
    assert [r["seen"] for r in results] == [None] * 40
    assert [r["token"] for r in results] == [f"t{i}" for i in range(40)]


def test_config_exposes_module_env(components, start_engine) -> None:  # type: ignore[no-untyped-def]
    engine = start_engine(
        module_toml("testkit", components["testkit"], env={"GREETING": '"hi"', "MODE": '"test"'})
    )
    status, _, body = engine.call("example.testkit", "/config")
    assert status == 200
    assert json.loads(body) == {"all": {"GREETING": "hi", "MODE": "test"}, "greeting": "hi"}

"""Outbound calls a guest gets wrong: a typed error to that guest, nothing left behind for the
next caller; bodies and replies within max_body_mb; links planted in /wr-io not followed."""

from __future__ import annotations

import json

import pytest

from tests.integration.engine.conftest import TRACING, Engine, StubProxy, module_toml

pytestmark = pytest.mark.slow

MIB = 1 << 20


def _call(engine: Engine, **spec: object) -> dict[str, object]:
    status, _, reply = engine.call("example.hostile", "/call", json.dumps(spec).encode())
    assert status == 200, reply
    result: dict[str, object] = json.loads(reply)
    return result


@pytest.fixture
def engine(components, start_engine, stub_proxy: StubProxy) -> Engine:  # type: ignore[no-untyped-def]
    # One worker: its few threads share the keep-alive connections a bad call could spoil.
    engine: Engine = start_engine(
        module_toml("hostile", components["hostile"], max_body_mb=1)
        + module_toml("echo", components["echo"], capabilities=TRACING)
        + module_toml("caller", components["caller"], capabilities=TRACING),
        workers=1,
        proxy=stub_proxy.address,
    )
    stub_proxy.engine_base = engine.base
    return engine


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ({"url": "http://rt.sink/a b"}, "URL 'http://rt.sink/a b' contains ' '"),
        ({"url": "http://example.echo/caf\u00e9"}, "contains '\u00e9'"),
        ({"url": "http://example.echo:port/x"}, "Port could not be cast"),
        ({"url": "/relative"}, "expected an absolute http:// URL"),
        ({"url": "http://example.echo/x", "method": "GE T"}, "method 'GE T' is not an HTTP"),
        ({"url": "http://example.echo/x", "headers": [["x-a", "1\r\nx-b: 2"]]}, "header 'x-a'"),
        ({"url": "http://example.echo/x", "headers": [["bad name", "v"]]}, "header name"),
        (
            {"url": "http://example.echo/x", "size": MIB + 1},
            "/wr-io/call-0.req holds 1048577 bytes, over the module's limit of 1048576 bytes",
        ),
    ],
)
def test_a_bad_call_is_a_typed_error_and_leaves_nothing_behind(
    engine: Engine, spec: dict[str, object], problem: str
) -> None:
    result = _call(engine, **spec)
    assert result["error"] == "InvalidCallError", result
    assert "invalid request: " in str(result["message"]), result
    assert problem in str(result["message"]), result
    # Other modules' calls go through the same worker threads and their pooled connections.
    for i in range(12):
        status, _, reply = engine.call("example.caller", "/run", f"after {i}".encode())
        assert (status, json.loads(reply)) == (200, {"reply": f"after {i}"}), reply


def test_a_reply_over_max_body_is_an_error_to_the_guest(engine: Engine) -> None:
    result = _call(engine, url=f"https://api.example.com/big?reply={2 * MIB}")
    assert result["error"] == "CallError"
    assert "reply body over the module's limit of 1048576 bytes" in str(result["message"])
    assert _call(engine, url=f"https://api.example.com/ok?reply={MIB}") == {
        "status": 200,
        "size": MIB,
    }


def test_calls_in_a_loop_do_not_fill_wr_io(engine: Engine) -> None:
    # Each body is removed once sent and each reply once read: 40 calls of 0.9 MiB each way
    # in one request stay inside the 2 MiB /wr-io quota.
    size = 900 * 1024
    result = _call(engine, url="https://api.example.com/x", size=size, times=40)
    assert result == {"status": 200, "size": size}


def test_links_planted_in_wr_io_are_not_followed(engine: Engine) -> None:
    status, _, reply = engine.call("example.hostile", "/planted")
    assert status == 200, reply
    results = json.loads(reply)
    for name in ("abs", "rel"):
        outcome = results[f"send-{name}"]
        assert not outcome.startswith("sent"), results
        if results[f"link-{name}"] == "made":
            assert "is not a plain file" in outcome or "cannot be read" in outcome, results

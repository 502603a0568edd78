"""Outbound calls against a loopback HTTP server (no wasm): bad requests are refused before
the connection is touched, replies over max_body_mb are refused, and a thread's keep-alive
connection stays usable after every kind of failure."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from runtime.engine.outbound import CallContext, InvalidRequest, OutboundError, ProxyClient
from runtime.wire import INLINE_BODY_MAX

LIMIT = 1000


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        size = self.path.partition("size=")[2]
        data = b"r" * int(size) if size else body
        self.send_response(200)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def proxy() -> Iterator[ProxyClient]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield ProxyClient(f"http://127.0.0.1:{server.server_address[1]}")
    server.shutdown()
    server.server_close()


def _context(io_dir: Path, limit: int = LIMIT) -> CallContext:
    return CallContext("m", "ns", None, time.monotonic() + 10, io_dir, limit, lambda: 2 * limit)


def _send(proxy: ProxyClient, ctx: CallContext, url: str, **kw: Any) -> bytes:
    prepared = proxy.prepare(
        ctx,
        kw.get("method", "POST"),
        url,
        kw.get("headers", []),
        kw.get("body_file"),
        None,
        kw.get("body", b""),
    )
    reply = proxy.deliver(ctx, prepared)
    assert reply.body_size == len(reply.body) or reply.body_file is not None
    if reply.body_file is None:
        return reply.body
    assert not reply.body
    return (ctx.io_dir / reply.body_file).read_bytes()


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"url": "http://rt.sink/a b"}, "contains ' '"),
        ({"url": "http://rt.sink/\x00"}, "contains '\\x00'"),
        ({"url": "http://rt.sink/caf\u00e9"}, "contains '\u00e9'"),
        ({"url": "http://[::1/x"}, "Invalid IPv6 URL"),
        ({"url": "http://h:99999999/x"}, "Port out of range"),
        ({"url": "ftp://h/x"}, "expected an absolute http:// URL"),
        ({"url": "http://h/x", "method": "GET\n"}, "is not an HTTP method token"),
        ({"url": "http://h/x", "headers": [("x", "a\r\nb")]}, "header 'x' contains '\\r'"),
        ({"url": "http://h/x", "headers": [("x", "\u20ac")]}, "contains '\u20ac'"),
        ({"url": "http://h/x", "headers": [("a:b", "v")]}, "header name 'a:b'"),
        ({"url": "http://h/x", "headers": [("x", "v" * 70_000)]}, "headers of 70001 bytes"),
        ({"url": "http://h/x", "body_file": "../etc"}, "expected a plain file name"),
        ({"url": "http://h/x", "body_file": "none"}, "/wr-io/none does not exist"),
    ],
)
def test_bad_requests_are_refused_and_the_connection_stays_usable(
    proxy: ProxyClient, tmp_path: Path, kw: dict[str, Any], problem: str
) -> None:
    ctx = _context(tmp_path)
    with pytest.raises(InvalidRequest) as info:
        _send(proxy, ctx, **kw)
    assert str(info.value).startswith("invalid request: ")
    assert problem in str(info.value)
    for _ in range(3):  # the same thread, the same pooled connection
        assert _send(proxy, ctx, "http://h/echo", body_file=_body(tmp_path, b"ok")) == b"ok"


def _body(io_dir: Path, data: bytes) -> str:
    (io_dir / "body").write_bytes(data)
    return "body"


def test_body_file_is_consumed_and_limited(proxy: ProxyClient, tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    assert _send(proxy, ctx, "http://h/x", body_file=_body(tmp_path, b"b" * LIMIT)) == b"b" * LIMIT
    assert not (tmp_path / "body").exists()  # its room in /wr-io is given back
    with pytest.raises(InvalidRequest, match="holds 1001 bytes, over the module's limit"):
        _send(proxy, ctx, "http://h/x", body_file=_body(tmp_path, b"b" * (LIMIT + 1)))
    (tmp_path / "link").symlink_to(tmp_path / "body")
    with pytest.raises(InvalidRequest, match="cannot be read"):
        _send(proxy, ctx, "http://h/x", body_file="link")


def test_a_reply_over_the_limit_is_refused(proxy: ProxyClient, tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    assert _send(proxy, ctx, f"http://h/x?size={LIMIT}") == b"r" * LIMIT
    with pytest.raises(OutboundError, match="reply body over the module's limit of 1000 bytes"):
        _send(proxy, ctx, f"http://h/x?size={LIMIT + 1}")
    assert _send(proxy, ctx, "http://h/x?size=5") == b"rrrrr"


def test_a_reply_that_does_not_fit_in_wr_io_is_refused(proxy: ProxyClient, tmp_path: Path) -> None:
    ctx = _context(tmp_path, 4 * INLINE_BODY_MAX)
    size = INLINE_BODY_MAX + 1  # a file: inline replies take no room in /wr-io
    ctx.io_room = lambda: INLINE_BODY_MAX
    with pytest.raises(OutboundError, match=f"no room for the reply's {size} bytes"):
        _send(proxy, ctx, f"http://h/x?size={size}")
    assert _send(proxy, ctx, f"http://h/x?size={INLINE_BODY_MAX}") == b"r" * INLINE_BODY_MAX


def test_small_bodies_go_inline_both_ways_and_large_ones_through_files(
    proxy: ProxyClient, tmp_path: Path
) -> None:
    ctx = _context(tmp_path, 4 * INLINE_BODY_MAX)
    small = b"s" * INLINE_BODY_MAX
    assert _send(proxy, ctx, "http://h/echo", body=small) == small
    assert list(tmp_path.iterdir()) == []  # no file either way
    big = b"b" * (INLINE_BODY_MAX + 1)
    prepared = proxy.prepare(ctx, "POST", "http://h/echo", [], _body(tmp_path, big), None)
    reply = proxy.deliver(ctx, prepared)
    assert reply.body == b"" and reply.body_size == len(big) and reply.body_file is not None
    assert (tmp_path / reply.body_file).read_bytes() == big


def test_an_inline_body_over_the_inline_limit_or_beside_a_file_is_refused(
    proxy: ProxyClient, tmp_path: Path
) -> None:
    ctx = _context(tmp_path, 4 * INLINE_BODY_MAX)
    with pytest.raises(InvalidRequest, match=f"over {INLINE_BODY_MAX}: larger bodies go in a file"):
        _send(proxy, ctx, "http://h/x", body=b"x" * (INLINE_BODY_MAX + 1))
    with pytest.raises(InvalidRequest, match="both inline and in a file"):
        _send(proxy, ctx, "http://h/x", body=b"x", body_file=_body(tmp_path, b"y"))
    assert _send(proxy, ctx, "http://h/echo", body=b"ok") == b"ok"

"""The engine's HTTP front on the wire: keep-alive, pipelining, 100-continue, chunked and large
bodies, HEAD, HTTP/1.0 and malformed requests (raw sockets against a real wr-engine)."""

from __future__ import annotations

import hashlib
import http.client
import socket
from typing import BinaryIO
from urllib.parse import urlsplit

import pytest

from tests.integration.engine.conftest import module_toml

pytestmark = pytest.mark.slow

ECHO = "POST /echo HTTP/1.1\r\nhost: t\r\nx-wr-module: testkit\r\nx-wr-namespace: example\r\n"


def _connect(base: str) -> socket.socket:
    parts = urlsplit(base)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def _read_response(f: BinaryIO) -> tuple[int, dict[str, str], bytes]:
    """One response with a content-length (or none for bodiless statuses) from f."""
    status_line = f.readline()
    assert status_line.startswith(b"HTTP/1.1 "), status_line
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    return status, headers, f.read(length) if length else b""


@pytest.fixture
def engine(components, start_engine):  # type: ignore[no-untyped-def]
    return start_engine(module_toml("testkit", components["testkit"]))


def test_pipelined_requests_are_answered_in_order(engine) -> None:  # type: ignore[no-untyped-def]
    bodies = [b"first", b"second" * 10, b"third" * 100]
    wire = b"".join(f"{ECHO}content-length: {len(b)}\r\n\r\n".encode() + b for b in bodies)
    with _connect(engine.base) as sock, sock.makefile("rb") as f:
        sock.sendall(wire)  # all three in one write: parsed ahead, answered one by one
        answers = [_read_response(f) for _ in bodies]
    assert [a[0] for a in answers] == [200, 200, 200]
    assert [a[2] for a in answers] == bodies


def test_expect_100_continue(engine) -> None:  # type: ignore[no-untyped-def]
    body = b"x" * 5000
    with _connect(engine.base) as sock, sock.makefile("rb") as f:
        sock.sendall(f"{ECHO}content-length: {len(body)}\r\nexpect: 100-continue\r\n\r\n".encode())
        assert f.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert f.readline() == b"\r\n"
        sock.sendall(body)
        status, _, reply = _read_response(f)
    assert status == 200 and reply == body


def test_large_chunked_body_round_trip(engine) -> None:  # type: ignore[no-untyped-def]
    # Above the inline limit both ways: spilled to a file on the way in, mapped on the way out.
    chunks = [bytes([i]) * 100_000 for i in range(30)]
    parts = urlsplit(engine.base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        headers = {"x-wr-module": "testkit", "x-wr-namespace": "example"}
        conn.request("POST", "/echo", body=iter(chunks), headers=headers, encode_chunked=True)
        resp = conn.getresponse()
        reply = resp.read()
        assert resp.status == 200
        assert hashlib.sha256(reply).digest() == hashlib.sha256(b"".join(chunks)).digest()
        # The connection stays usable after a large exchange.
        conn.request("POST", "/echo", body=b"again", headers=headers)
        resp = conn.getresponse()
        assert (resp.status, resp.read()) == (200, b"again")
    finally:
        conn.close()


def test_head_has_length_but_no_body(engine) -> None:  # type: ignore[no-untyped-def]
    with _connect(engine.base) as sock, sock.makefile("rb") as f:
        sock.sendall(b"HEAD /__health HTTP/1.1\r\nhost: t\r\n\r\nGET /__health HTTP/1.1\r\n\r\n")
        status_line = f.readline()
        head = []
        while (line := f.readline()) != b"\r\n":
            head.append(line.lower())
        # The next bytes on the wire are the second response, not a body of the first.
        status, _, body = _read_response(f)
    assert status_line.startswith(b"HTTP/1.1 200")
    lengths = [int(h.split(b":")[1]) for h in head if h.startswith(b"content-length:")]
    assert lengths and lengths[0] > 0
    assert status == 200 and b'"ok": true' in body


def test_http_1_0_closes_after_the_answer(engine) -> None:  # type: ignore[no-untyped-def]
    with _connect(engine.base) as sock, sock.makefile("rb") as f:
        sock.sendall(b"GET /__health HTTP/1.0\r\n\r\n")
        status, headers, _ = _read_response(f)
        assert status == 200
        assert headers.get("connection") == "close"
        assert f.read() == b""  # closed by the engine


def test_malformed_request_gets_400_and_close(engine) -> None:  # type: ignore[no-untyped-def]
    with _connect(engine.base) as sock, sock.makefile("rb") as f:
        sock.sendall(f"{ECHO}content-length: 2\r\n\r\nokGARBAGE\x00\r\n\r\n".encode())
        first = _read_response(f)
        second = _read_response(f)
        assert f.read() == b""
    assert first[0] == 200 and first[2] == b"ok"  # the request before the garbage is answered
    assert second[0] == 400 and b"malformed HTTP request" in second[2]


def test_oversized_headers_get_431(engine) -> None:  # type: ignore[no-untyped-def]
    with _connect(engine.base) as sock, sock.makefile("rb") as f:
        sock.sendall(f"{ECHO}x-big: {'a' * 70_000}\r\ncontent-length: 0\r\n\r\n".encode())
        status, _, body = _read_response(f)
    assert status == 431 and b"request headers exceed" in body

"""HTTP/1.1 wire behaviour of the data path: keep-alive, pipelining, HEAD, chunked, HTTP/1.0."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable

import httptools
import pytest

from tests.integration.proxy.support import Engine, FakeManager, ProxyProcess, rule

DEST = b"x-wr-destination: http://example.echo/pkg.Echo/Say\r\n"


class _Responses:
    """Parses a byte stream of responses; each is (status, headers, body)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[tuple[int, dict[str, str], bytes]] = []
        self._headers: dict[str, str] = {}
        self._body = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append((self.parser.get_status_code(), self._headers, self._body))
        self._headers, self._body = {}, b""


def _read_responses(
    sock: socket.socket, count: int, head_only: set[int] | None = None
) -> list[tuple[int, dict[str, str], bytes]]:
    parsers = _Responses()
    sock.settimeout(10)
    while len(parsers.done) < count:
        data = sock.recv(65536)
        if not data:
            break
        parsers.parser.feed_data(data)
    return parsers.done


@pytest.fixture
def proxy(
    manager: FakeManager, fresh_engines: list[Engine], shared_proxy: ProxyProcess
) -> ProxyProcess:
    shared_proxy.wait_table(manager.set_rules([rule(fresh_engines[0])]))
    return shared_proxy


def _connect(proxy: ProxyProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=10)


def test_keep_alive_serves_many_requests_on_one_connection(proxy: ProxyProcess) -> None:
    connects = "wr_proxy_upstream_connects_total"
    before = proxy.sample(connects)
    with _connect(proxy) as sock:
        for i in range(5):
            sock.sendall(b"GET /n/%d HTTP/1.1\r\nhost: x\r\n%s\r\n" % (i, DEST))
            [(status, _, body)] = _read_responses(sock, 1)
            assert status == 200 and json.loads(body)["path"] == "/pkg.Echo/Say"
    assert proxy.sample(connects) - before <= 1  # type: ignore[operator] # pooled, reused


def test_pipelined_requests_are_answered_in_order(proxy: ProxyProcess) -> None:
    requests = b"".join(
        b"POST /p HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n%s\r\n%s" % (i, DEST, b"x" * i)
        for i in range(1, 6)
    )
    with _connect(proxy) as sock:
        sock.sendall(requests)
        responses = _read_responses(sock, 5)
    assert [json.loads(body)["body_size"] for _, _, body in responses] == [1, 2, 3, 4, 5]


def test_head_then_get_on_the_same_connection(proxy: ProxyProcess) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"HEAD /h HTTP/1.1\r\nhost: x\r\n%s\r\n" % DEST)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"content-length" in head.lower()
        assert rest == b""  # no body after a HEAD answer
        sock.sendall(b"GET /g HTTP/1.1\r\nhost: x\r\n%s\r\n" % DEST)
        [(status, _, body)] = _read_responses(sock, 1)
        assert status == 200 and json.loads(body)["method"] == "GET"


def test_chunked_request_and_response(proxy: ProxyProcess, manager: FakeManager) -> None:
    chunks = [b"a" * 10, b"b" * 100_000, b"c"]
    encoded = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    echo = b"x-wr-destination: http://example.echo/stream/echo\r\n"
    with _connect(proxy) as sock:
        sock.sendall(
            b"POST /stream/echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n%s\r\n%s"
            % (echo, encoded)
        )
        [(status, headers, body)] = _read_responses(sock, 1)
    assert status == 200
    assert headers.get("transfer-encoding") == "chunked"
    assert body == b"".join(chunks)


def test_http10_client_gets_no_chunked_body(proxy: ProxyProcess) -> None:
    echo = b"x-wr-destination: http://example.echo/stream/echo\r\n"
    with _connect(proxy) as sock:
        sock.sendall(b"POST /stream/echo HTTP/1.0\r\ncontent-length: 5\r\n%s\r\nhello" % echo)
        data = b""
        while chunk := sock.recv(65536):  # HTTP/1.0 without keep-alive: the proxy closes
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.")
    assert b"transfer-encoding" not in head.lower()
    assert body == b"hello"


def test_http10_keep_alive_request_is_forwarded_as_http10(proxy: ProxyProcess) -> None:
    """A connection header is what tells a 1.0 request from a 1.1 one on the fast path."""
    for line in (b"connection: keep-alive", b"proxy-connection: keep-alive"):
        with _connect(proxy) as sock:
            sock.sendall(b"GET /k HTTP/1.0\r\n%s\r\n%s\r\n" % (line, DEST))
            [(status, _, body)] = _read_responses(sock, 1)
        assert (status, json.loads(body)["version"]) == (200, "1.0")
    with _connect(proxy) as sock:
        sock.sendall(b"GET /k HTTP/1.1\r\nconnection: keep-alive\r\n%s\r\n" % DEST)
        [(status, _, body)] = _read_responses(sock, 1)
    assert (status, json.loads(body)["version"]) == (200, "1.1")


def test_connection_close_is_honoured(proxy: ProxyProcess) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"GET /c HTTP/1.1\r\nhost: x\r\nconnection: close\r\n%s\r\n" % DEST)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")


def test_expect_100_continue_is_relayed(proxy: ProxyProcess) -> None:
    with _connect(proxy) as sock:
        sock.sendall(
            b"POST /e HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n%s\r\n"
            % DEST
        )
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(b"body")
        [(status, _, body)] = _read_responses(sock, 1)
    assert status == 200 and json.loads(body)["body_size"] == 4


def test_malformed_request_gets_400_and_close(proxy: ProxyProcess) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nbad header line\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400") and b"malformed HTTP request" in data


def test_oversized_headers_get_431(proxy: ProxyProcess) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\nx-big: %s\r\n\r\n" % (b"a" * 70_000))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 431")


def test_garbage_after_a_pipelined_request_is_answered_after_it(proxy: ProxyProcess) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nhost: x\r\n%s\r\nNOT HTTP AT ALL\r\n\r\n" % DEST)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    first, _, rest = data.partition(b"HTTP/1.1 400")
    assert first.startswith(b"HTTP/1.1 200") and b'"engine"' in first
    assert b"malformed HTTP request" in rest


def test_idle_client_connections_are_closed(
    manager: FakeManager, fresh_engines: list[Engine], start_proxy: Callable[..., ProxyProcess]
) -> None:
    idle_proxy = start_proxy(client_idle_timeout_secs=0.5)
    idle_proxy.wait_table(manager.set_rules([rule(fresh_engines[0])]))
    with _connect(idle_proxy) as sock:
        sock.sendall(b"GET /i HTTP/1.1\r\nhost: x\r\n%s\r\n" % DEST)
        [(status, _, _)] = _read_responses(sock, 1)
        assert status == 200
        sock.settimeout(5)
        started = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the proxy, not by the 5 s timeout
        assert time.monotonic() - started < 3


def test_refused_expect_continue_request_is_answered_and_closed(proxy: ProxyProcess) -> None:
    with _connect(proxy) as sock:
        sock.sendall(
            b"POST /e HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\nexpect: 100-continue\r\n"
            b"x-wr-destination: http://example.unknown/x\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):  # no body sent: the proxy must not wait for it
            data += chunk
    assert data.startswith(b"HTTP/1.1 404") and b"connection: close" in data


def test_half_close_after_a_whole_request_still_gets_the_answer(proxy: ProxyProcess) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"GET /h HTTP/1.1\r\nhost: x\r\n%s\r\n" % DEST)
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200")


def test_half_close_in_the_middle_of_a_body_closes(proxy: ProxyProcess) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"POST /h HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n%s\r\nonly" % DEST)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        data = b""
        while chunk := sock.recv(65536):  # ends with the proxy's close, not the timeout
            data += chunk
    assert b"HTTP/1.1 200" not in data


def test_nothing_is_answered_after_connection_close(proxy: ProxyProcess) -> None:
    with _connect(proxy) as sock:
        sock.sendall(
            b"GET /1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n%s\r\n"
            b"GET /2 HTTP/1.1\r\nhost: x\r\n%s\r\n" % (DEST, DEST)
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 ") == 1 and data.startswith(b"HTTP/1.1 200"), data


def _read_all(sock: socket.socket) -> bytes:
    """Everything until the proxy closes (the socket's 10 s timeout bounds the wait)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


_NO_UPGRADE = b"upgrades (Upgrade, CONNECT) are not supported"


@pytest.mark.parametrize(
    ("request_bytes", "status", "reason"),
    [
        (
            b"GET /chat HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: websocket\r\n"
            + DEST
            + b"\r\n",
            b"501",
            _NO_UPGRADE,
        ),
        (
            b"GET /chat HTTP/1.1\r\nhost: x\r\nconnection: keep-alive, Upgrade\r\n"
            b"upgrade: h2c\r\n" + DEST + b"\r\n",
            b"501",
            _NO_UPGRADE,
        ),
        (
            b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n" + DEST + b"\r\n",
            b"501",
            _NO_UPGRADE,
        ),
        (  # RFC 9112 6.1: transfer-encoding in an HTTP/1.0 message means faulty framing
            b"POST /stream/echo HTTP/1.0\r\nconnection: keep-alive\r\n"
            b"transfer-encoding: chunked\r\n" + DEST + b"\r\n5\r\nhello\r\n0\r\n\r\n",
            b"400",
            b"transfer-encoding is not allowed in an HTTP/1.0 request",
        ),
    ],
    ids=["upgrade", "h2c", "connect", "http10-chunked"],
)
def test_what_cannot_be_forwarded_gets_one_answer_and_a_close(
    proxy: ProxyProcess,
    fresh_engines: list[Engine],
    request_bytes: bytes,
    status: bytes,
    reason: bytes,
) -> None:
    with _connect(proxy) as sock:
        sock.sendall(request_bytes)
        data = _read_all(sock)
    assert data.count(b"HTTP/1.1 ") == 1 and data.startswith(b"HTTP/1.1 " + status), data
    assert reason in data and b"connection: close" in data
    assert fresh_engines[0].requests == []  # refused before anything went upstream


def test_upgrade_header_without_connection_upgrade_is_an_ordinary_request(
    proxy: ProxyProcess,
) -> None:
    with _connect(proxy) as sock:
        sock.sendall(b"GET /u HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\n%s\r\n" % DEST)
        [(status, _, body)] = _read_responses(sock, 1)
    assert status == 200 and "upgrade" not in json.loads(body)["headers"]


def test_http10_keep_alive_client_gets_1_0_framing_from_the_proxy_too(
    proxy: ProxyProcess,
) -> None:
    """The proxy's own answers have a length and say keep-alive, as a 1.0 client needs."""
    with _connect(proxy) as sock:
        for _ in range(2):  # the connection stays usable
            sock.sendall(
                b"GET /x HTTP/1.0\r\nconnection: keep-alive\r\n"
                b"x-wr-destination: http://example.unknown/x\r\n\r\n"
            )
            [(status, headers, body)] = _read_responses(sock, 1)
            assert status == 404 and b"unknown module" in body
            assert headers["connection"] == "keep-alive"
            assert int(headers["content-length"]) == len(body)
            assert "transfer-encoding" not in headers

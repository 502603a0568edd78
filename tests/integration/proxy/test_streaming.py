"""Bodies stream through the proxy both ways with bounded memory (1 GiB, chunked and sized)."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httptools
import pytest

from tests.infra.process import wait_until
from tests.integration.proxy.support import Engine, FakeManager, ProxyProcess, rule

GIB = 1 << 30
_PERIOD = 65_521  # a prime, so the pattern never lines up with chunk boundaries
_PATTERN = bytes((i * 7 + 3) % 251 for i in range(_PERIOD))
_CHUNK = 256 * 1024
_RING = _PATTERN * (2 + _CHUNK // _PERIOD)


def _expected(offset: int, size: int) -> bytes:
    start = offset % _PERIOD
    return _RING[start : start + size]


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


class _RssWatch(threading.Thread):
    """Samples a process's RSS until stopped; `peak` is the highest seen."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.baseline = self.peak = _rss_bytes(pid)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.05):
            self.peak = max(self.peak, _rss_bytes(self.pid))

    def stop(self) -> int:
        self._stop_event.set()
        self.join(5)
        return self.peak - self.baseline


class _VerifyingReader:
    """Parses one response and checks its body against the pattern as it arrives."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.received = 0
        self.done = False
        self.headers: dict[str, str] = {}

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        view = memoryview(body)
        while view:
            piece = view[:_CHUNK]
            if piece != _expected(self.received, len(piece)):
                raise AssertionError(f"body differs from what was sent near byte {self.received}")
            self.received += len(piece)
            view = view[_CHUNK:]

    def on_message_complete(self) -> None:
        self.done = True


def _send_chunked(sock: socket.socket, size: int) -> None:
    sent = 0
    while sent < size:
        piece = _expected(sent, min(_CHUNK, size - sent))
        sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        sent += len(piece)
    sock.sendall(b"0\r\n\r\n")


@pytest.fixture
def proxy(
    manager: FakeManager, fresh_engines: list[Engine], shared_proxy: ProxyProcess
) -> ProxyProcess:
    shared_proxy.wait_table(manager.set_rules([rule(fresh_engines[0])]))
    return shared_proxy


def test_slow_reader_holds_the_upstream_back(
    proxy: ProxyProcess, fresh_engines: list[Engine]
) -> None:
    size = 256 * 1024 * 1024
    engine = fresh_engines[0]
    engine.generated = 0
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=60) as sock:
        sock.sendall(
            b"GET /stream/generate/%d HTTP/1.1\r\nhost: x\r\n"
            b"x-wr-destination: http://example.echo/stream/generate/%d\r\n\r\n" % (size, size)
        )
        # Not reading for a bounded while: the proxy must stop reading the upstream, so what
        # the upstream manages to hand over stays near the socket buffers on the way.
        watch_until = time.monotonic() + 2.0
        while time.monotonic() < watch_until:
            assert engine.generated < 48 * 1024 * 1024, engine.generated
            time.sleep(0.05)  # sampling interval of the observation, not synchronisation
        got, head = 0, b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        got = len(head.partition(b"\r\n\r\n")[2])
        while got < size:
            data = sock.recv(1 << 20)
            assert data, "connection closed early"
            got += len(data)
    assert got == size
    # the upstream counts a chunk once its write returned, which can be just after the
    # client has read it
    wait_until(lambda: engine.generated == size, 10.0, "the upstream to count every byte")


@pytest.mark.timeout(180)
def test_one_gib_echoed_through_the_proxy_with_bounded_memory(proxy: ProxyProcess) -> None:
    watch = _RssWatch(proxy.process.pid)
    watch.start()
    reader = _VerifyingReader()
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=60) as sock:
        sock.sendall(
            b"POST /stream/echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n"
            b"x-wr-destination: http://example.echo/stream/echo\r\n\r\n"
        )
        sender = threading.Thread(target=_send_chunked, args=(sock, GIB), daemon=True)
        sender.start()
        while not reader.done and time.monotonic() - started < 150:
            data = sock.recv(1 << 20)
            if not data:
                break
            reader.parser.feed_data(data)
        sender.join(10)
    growth = watch.stop()
    assert reader.done and reader.received == GIB
    assert reader.headers.get("transfer-encoding") == "chunked"
    assert growth < 64 * 1024 * 1024, f"proxy RSS grew by {growth / 2**20:.1f} MiB"


def test_sized_bodies_both_ways(proxy: ProxyProcess) -> None:
    size = 64 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=60) as sock:
        sock.sendall(
            b"PUT /stream/count HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n"
            b"x-wr-destination: http://example.echo/stream/count\r\n\r\n" % size
        )
        sent = 0
        while sent < size:
            piece = _expected(sent, min(_CHUNK, size - sent))
            sock.sendall(piece)
            sent += len(piece)
        response = b""
        while b"}" not in response:
            response += sock.recv(65536)
        assert json.loads(response.partition(b"\r\n\r\n")[2])["received"] == size

        sock.sendall(
            b"GET /stream/generate/%d HTTP/1.1\r\nhost: x\r\n"
            b"x-wr-destination: http://example.echo/stream/generate/%d\r\n\r\n" % (size, size)
        )
        got = 0
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        header, _, body = head.partition(b"\r\n\r\n")
        assert b"content-length: %d" % size in header.lower()
        got = len(body)
        while got < size:
            data = sock.recv(1 << 20)
            assert data, "connection closed early"
            got += len(data)
        assert got == size


def test_client_leaving_mid_response_does_not_poison_the_pool(proxy: ProxyProcess) -> None:
    size = 512 * 1024 * 1024
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(
            b"GET /stream/generate/%d HTTP/1.1\r\nhost: x\r\n"
            b"x-wr-destination: http://example.echo/stream/generate/%d\r\n\r\n" % (size, size)
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    # The half-read upstream connection must have been closed, not pooled.
    for _ in range(5):
        status, _, body = proxy.request("http://example.echo/pkg.Echo/Say")
        assert status == 200 and json.loads(body)["engine"] == "engine-0"

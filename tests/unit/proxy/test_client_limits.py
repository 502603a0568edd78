"""A client connection's limits and deadlines, on in-memory transports and a clock the test
moves: no sockets, no waiting (the integration tests run the same cases on real sockets)."""

from __future__ import annotations

import asyncio
import re
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from runtime.proxy.breaker import BreakerRegistry
from runtime.proxy.client import INTERNAL, LINGER_SECS, ClientConnection
from runtime.proxy.egress import EgressPolicy
from runtime.proxy.metrics import ProxyMetrics
from runtime.proxy.router import Router
from runtime.proxy.tracing import HopTracer
from runtime.proxy.upstream import UpstreamPool

HEADER_TIMEOUT = 2.0
IDLE_TIMEOUT = 5.0
KIB64 = 64 * 1024


class FakeLoop:
    """What the router asks of its loop here: the time, which the test sets."""

    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now


class MemoryTransport:
    def __init__(self) -> None:
        self.written = b""
        self.eof_written = self.closed = self.aborted = False
        self.reading = True

    def write(self, data: bytes) -> None:
        assert not self.eof_written, "write after write_eof"
        self.written += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof_written = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True


class Harness:
    def __init__(self) -> None:
        self.loop = FakeLoop()
        metrics = ProxyMetrics(CollectorRegistry())
        self.router = Router(
            node_id="node-a",
            own_peer_address="https://127.0.0.1:9443",
            request_timeout=30,
            header_timeout=HEADER_TIMEOUT,
            idle_timeout=IDLE_TIMEOUT,
            egress=EgressPolicy([]),
            ingress=None,
            pool=UpstreamPool(None, 10),
            breakers=BreakerRegistry(5, 30, metrics.breaker_state),
            metrics=metrics,
            tracer=HopTracer(False, 0.0),
            loop=cast(asyncio.AbstractEventLoop, self.loop),
        )

    def connect(self) -> tuple[ClientConnection, MemoryTransport]:
        client = ClientConnection(self.router, INTERNAL)
        transport = MemoryTransport()
        client.connection_made(cast(Any, transport))
        return client, transport

    def after(self, seconds: float) -> None:
        """Let seconds pass, then run the sweep the server runs a few times a second."""
        self.loop.now += seconds
        self.router.sweep()


@pytest.fixture
def harness() -> Harness:
    return Harness()


def _statuses(written: bytes) -> list[bytes]:
    """The statuses of the answers written (each body ends with a newline)."""
    return re.findall(rb"(?:^|\n)HTTP/1\.1 (\d{3}) ", written)


def test_a_head_not_whole_within_the_header_timeout_gets_408_then_the_connection_ends(
    harness: Harness,
) -> None:
    client, transport = harness.connect()
    client.data_received(b"GET /slow HTTP/1.1\r\nhost: x\r\n")
    harness.after(HEADER_TIMEOUT / 2)
    client.data_received(b"x-more: 1\r\n")  # trickling on does not move the deadline
    harness.after(HEADER_TIMEOUT / 2 - 0.25)  # (steps exact in binary: no rounding)
    assert transport.written == b""
    harness.after(0.25)
    assert _statuses(transport.written) == [b"408"]
    assert b"not received within 2 s" in transport.written
    assert transport.eof_written and not transport.closed  # lingers: the answer gets read
    client.data_received(b"x-even-more: 1\r\n\r\n")  # dropped, never answered
    harness.after(LINGER_SECS)
    assert transport.aborted and _statuses(transport.written) == [b"408"]


def test_a_new_connection_must_send_a_head_in_time_and_an_idle_one_is_closed(
    harness: Harness,
) -> None:
    _, silent_transport = harness.connect()
    harness.after(HEADER_TIMEOUT)
    assert silent_transport.closed and silent_transport.written == b""

    client, transport = harness.connect()
    client.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")  # 400: no destination
    assert _statuses(transport.written) == [b"400"] and not transport.closed
    harness.after(IDLE_TIMEOUT - 0.5)
    assert not transport.closed
    harness.after(0.5)
    assert transport.closed and _statuses(transport.written) == [b"400"]


def test_the_url_counts_against_the_head_limit_as_it_arrives(harness: Harness) -> None:
    client, transport = harness.connect()
    client.data_received(b"GET /")
    for _ in range(3):
        client.data_received(b"a" * (KIB64 // 2))
    assert _statuses(transport.written) == [b"414"]
    assert b"request URL exceeds 65536 bytes" in transport.written
    client.data_received(b"a" * KIB64 + b" HTTP/1.1\r\n\r\n")  # the rest is dropped
    assert _statuses(transport.written) == [b"414"] and transport.eof_written


def test_a_header_line_that_never_ends_is_refused_by_its_size_on_the_wire(
    harness: Harness,
) -> None:
    client, transport = harness.connect()
    client.data_received(b"GET / HTTP/1.1\r\nx-big: ")
    reads = 0
    while not transport.written and reads < 100:
        client.data_received(b"a" * KIB64)
        reads += 1
    # 128 KiB counted after the first read (the one the head began in), then refused
    assert _statuses(transport.written) == [b"431"] and reads == 4


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"GET / HTTP/1.1\r\nconnection: upgrade\r\nupgrade: websocket\r\n", b"501"),
        (b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com\r\n", b"501"),
        (b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n", b"400"),
    ],
)
def test_requests_the_proxy_cannot_forward_get_one_answer_before_anything_is_sent(
    harness: Harness, head: bytes, status: bytes
) -> None:
    client, transport = harness.connect()
    client.data_received(head + b"x-wr-destination: http://a.b/\r\n\r\n0\r\n\r\n")
    assert _statuses(transport.written) == [status]
    assert client.current is None and harness.router.pool.connects == 0
    assert transport.eof_written


def test_a_head_that_begins_in_the_read_ending_a_body_is_timed_too(harness: Harness) -> None:
    client, transport = harness.connect()
    # Answered by the proxy itself (400: no destination); the next head begins in that read.
    client.data_received(b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\nokGET /sl")
    client.data_received(b"ow HTTP/1.1\r\n")
    assert _statuses(transport.written) == [b"400"]
    harness.after(0.25)  # the sweep notices the head and times it from now
    harness.after(HEADER_TIMEOUT - 0.25)
    assert _statuses(transport.written) == [b"400"]
    harness.after(0.25)
    assert _statuses(transport.written) == [b"400", b"408"]

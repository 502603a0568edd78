"""Upstream side of the data path: keep-alive connections to engines/peers and their pool."""

# Response bytes are relayed to the client unchanged as they arrive; the response parser only
# watches them to learn the status, keep-alive and where the message ends.

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING, cast

import httptools

from runtime.proxy.routing import PEER_TLS, PUBLIC_TLS, Upstream

if TYPE_CHECKING:
    from runtime.proxy.exchange import Exchange

_MAX_IDLE_PER_UPSTREAM = 128


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection to an upstream; serves one exchange at a time."""

    def __init__(self, pool: UpstreamPool, key: tuple[str, int, int]) -> None:
        self.pool = pool
        self.key = key
        self.idle = pool.idle_list(key)  # where release puts it: no key lookup per request
        self.transport: asyncio.Transport | None = None
        self.exchange: Exchange | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.reused = False
        self.head_only = False  # the request was HEAD: the response ends with its headers
        self.keep_alive = False
        self.message_done = False
        self.closed = False
        self.read_paused = False
        self.interim = False  # the headers parsed last were a 1xx response's

    # asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        exchange = self.exchange
        if exchange is None:  # nothing asked: an idle connection must not talk
            self.close()
            return
        # Relay first (completion may release this connection); inlined Exchange work, as this
        # runs once per response read.
        exchange.response_started = True
        client = exchange.client
        if not client.closing:
            client.transport.write(data)  # type: ignore[union-attr] # set until closing
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.close()  # a connection that broke the protocol is never reused
            if self.message_done:  # the answer was whole; what followed it was not asked for
                exchange.close_client = True  # its bytes went out too: end the client stream
                exchange.on_response_complete()
            else:
                exchange.on_response_invalid(f"invalid HTTP response from upstream: {exc}")
            return
        if self.message_done:
            exchange.on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        exchange = self.exchange
        if exchange is not None:
            self.exchange = None
            exchange.on_upstream_lost(self)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.on_upstream_paused(True)

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.on_upstream_paused(False)

    # httptools callbacks: record only, the exchange acts after feed_data returns
    def on_headers_complete(self) -> None:
        if self.message_done:
            raise ValueError("a second response to one request")
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            self.interim = True
            return  # interim response (100 Continue): relayed, the exchange goes on
        self.interim = False
        self.keep_alive = self.parser.should_keep_alive()
        if self.exchange is None:
            raise ValueError("a response nobody asked for")
        self.exchange.on_response_head(status, self.keep_alive)
        if self.head_only:
            self.message_done = True

    def on_message_complete(self) -> None:
        if self.interim:
            return
        self.keep_alive = self.keep_alive and self.parser.should_keep_alive()
        self.message_done = True

    # used by the exchange and the pool
    def begin(self, exchange: Exchange, head_only: bool) -> None:
        self.exchange = exchange
        if self.head_only:  # the parser still waits for the body a HEAD response announced
            self.parser = httptools.HttpResponseParser(self)
        self.head_only = head_only
        self.message_done = False
        self.keep_alive = False
        self.interim = False

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed and not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and self.transport is not None and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        self.exchange = None
        if not self.closed:
            self.closed = True
            self.pool.forget(self)
            if self.transport is not None:
                self.transport.close()


class UpstreamPool:
    """Idle keep-alive connections per upstream address, and new connections on a miss."""

    def __init__(
        self,
        peer_ssl: ssl.SSLContext | None,
        connect_timeout: float,
    ) -> None:
        self._idle: dict[tuple[str, int, int], list[UpstreamConnection]] = {}
        self._peer_ssl = peer_ssl
        self._public_ssl: ssl.SSLContext | None = None
        self._connect_timeout = connect_timeout
        self.connects = 0

    def take_idle(self, key: tuple[str, int, int]) -> UpstreamConnection | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def connect(self, upstream: Upstream) -> UpstreamConnection:
        """Open a new connection; OSError/ssl.SSLError/TimeoutError when that fails."""
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if upstream.tls == PEER_TLS:
            if self._peer_ssl is None:
                raise OSError(f"{upstream.address}: no [node.tls] configured for peer mTLS")
            context = self._peer_ssl
        elif upstream.tls == PUBLIC_TLS:
            if self._public_ssl is None:
                self._public_ssl = ssl.create_default_context()
            context = self._public_ssl
        self.connects += 1
        async with asyncio.timeout(self._connect_timeout):
            _, conn = await loop.create_connection(
                lambda: UpstreamConnection(self, upstream.key),
                upstream.host,
                upstream.port,
                ssl=context,
                server_hostname=upstream.host if context is not None else None,
            )
        return conn

    def idle_list(self, key: tuple[str, int, int]) -> list[UpstreamConnection]:
        """The idle connections to one upstream (made on first use, kept)."""
        idle = self._idle.get(key)
        if idle is None:  # (setdefault would build a list per call)
            idle = self._idle[key] = []
        return idle

    def release(self, conn: UpstreamConnection) -> None:
        """Return a connection whose exchange ended cleanly, or close it if the pool is full."""
        conn.exchange = None
        if conn.closed:
            return
        idle = conn.idle
        if len(idle) >= _MAX_IDLE_PER_UPSTREAM:
            conn.close()
            return
        conn.reused = True
        if conn.read_paused:
            conn.resume_reading()
        idle.append(conn)

    def forget(self, conn: UpstreamConnection) -> None:
        idle = conn.idle
        if idle and conn in idle:
            idle.remove(conn)

    def idle_count(self) -> int:
        return sum(len(v) for v in self._idle.values())

    def close_all(self) -> None:
        for idle in self._idle.values():
            for conn in list(idle):
                conn.close()  # takes itself out of idle

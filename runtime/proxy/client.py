"""Client side of the data path: one asyncio.Protocol per inbound connection, httptools-parsed."""

# Parser callbacks only record what they saw into the Exchange being parsed; keep-alive,
# pipelining (requests parsed ahead wait in a queue with reading paused), flow control and the
# client's deadlines are handled explicitly here. Deadlines cost no timer per connection: the
# router's sweep compares them with its clock a few times a second (Router.sweep).

from __future__ import annotations

import asyncio
import logging
from collections import deque
from http import HTTPStatus
from typing import TYPE_CHECKING, cast

import httptools

from runtime import wire
from runtime.proxy.exchange import Exchange

if TYPE_CHECKING:
    from runtime.proxy.router import Router

log = logging.getLogger("wr-proxy.client")

INTERNAL = 0  # the data port: engines on this node
PEER = 1  # the mTLS peer port: other nodes' proxies; delivers to local engines only
EXTERNAL = 2  # public ingress: x-wr-* stripped, configured routes only

PIPELINED = 1  # read-pause reason: a parsed request waits behind the current one
_MAX_HEADER_BYTES = wire.MAX_HEADER_BYTES  # URL, header names and values, counted exactly
# What a head may take on the wire while a header line is still arriving (httptools hands a
# header over only when it is whole; the request line and separators count here too).
_MAX_HEAD_WIRE_BYTES = 2 * _MAX_HEADER_BYTES
# After refusing a request, what the client still sends is read and dropped for this long, so
# the refusal reaches it: closing with unread input would reset the connection instead.
LINGER_SECS = 2.0
_WR_PREFIX = wire.INTERNAL_HEADER_PREFIX.encode()

# Request headers the proxy reads, replaces or drops instead of forwarding as they came, by
# lower-case name; x-wr-* names not listed are forwarded (from inside only).
_DROP, _CONNECTION, _CONTENT_LENGTH, _TRANSFER_ENCODING, _TRACEPARENT, _EXPECT = range(6)
_WR_FIRST = _DESTINATION = 6
_VERSION, _VIA, _SOURCE, _SOURCE_NS, _WR_DROP = range(7, 12)
_SPECIAL = {
    **dict.fromkeys((b"host", b"keep-alive", b"te", b"trailer", b"upgrade"), _DROP),
    # dropped too; llhttp reads both for keep-alive, which on_headers_complete relies on
    b"connection": _CONNECTION,
    b"proxy-connection": _CONNECTION,
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"traceparent": _TRACEPARENT,
    b"expect": _EXPECT,
    wire.DESTINATION_HEADER.encode(): _DESTINATION,
    wire.VERSION_HEADER.encode(): _VERSION,
    wire.VIA_PROXY_HEADER.encode(): _VIA,
    wire.SOURCE_HEADER.encode(): _SOURCE,
    wire.SOURCE_NS_HEADER.encode(): _SOURCE_NS,
    wire.MODULE_HEADER.encode(): _WR_DROP,
    wire.NAMESPACE_HEADER.encode(): _WR_DROP,
}
_PROXY_ERROR_LINE = wire.PROXY_ERROR_HEADER.encode() + b": %s\r\n"
_PHRASES = {s.value: s.phrase.encode() for s in HTTPStatus}
_PHRASES[499] = b"Client Closed Request"
_NO_UPGRADE = "protocol upgrades (Upgrade, CONNECT) are not supported by wr-proxy"


class _Refused(Exception):
    """Raised in a parser callback: the request is answered with status and reason, then the
    connection closes (the rest of the stream cannot be trusted)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ClientConnection(asyncio.Protocol):
    """One inbound HTTP/1.x connection."""

    def __init__(self, router: Router, mode: int) -> None:
        self.router = router
        self.mode = mode
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.parsing: Exchange | None = None  # the request whose bytes the parser is reading
        self.current: Exchange | None = None  # the request being answered
        self.queue: deque[Exchange] = deque()
        self.pauses = 0
        self.write_paused = False
        self.eof = False
        self.header_bytes = 0  # URL, header names and values of the request being parsed
        self.head_read = 0  # bytes read since its head began (until the head is whole)
        self.connection_header = False  # the request being parsed has a connection header
        # On the loop clock (0.0: none): when the head being read must be whole, and when a
        # connection with nothing to do is closed (a new one must send its first head in time).
        self.head_deadline = 0.0
        self.idle_deadline = router.head_deadline
        self.linger_deadline = 0.0  # when a refused connection is closed at the latest
        self.broken: tuple[int, str] | None = None  # unparsable bytes after the current request
        self.closing = False  # we closed (or are closing) it: nothing more is read or written

    # ---- asyncio callbacks --------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.router.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self.broken is not None or self.closing:
            return  # the parser gave up on this stream; only the answers owed are left
        if self.head_deadline:  # a head arriving in several reads: count them as they come
            if self.head_read > _MAX_HEAD_WIRE_BYTES:  # a header line that never ends
                self.refuse(431, f"request head exceeds {_MAX_HEAD_WIRE_BYTES} bytes")
                return
            self.head_read += len(data)
        elif self.parsing is None:  # no request under way: these bytes begin a head
            self.head_deadline = self.router.head_deadline
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:  # not expected: on_headers_complete refuses them
            self.refuse(501, _NO_UPGRADE)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if isinstance(refused, _Refused):
                self.refuse(refused.status, refused.reason)
            else:  # a bug of ours: say so, and do not go on with a state we cannot trust
                log.error("internal error handling a request", exc_info=refused)
                self.refuse(500, "internal proxy error")
        except httptools.HttpParserError as exc:
            self.refuse(400, f"malformed HTTP request: {exc}")

    def eof_received(self) -> bool:
        self.eof = True
        if self.closing:
            return False  # refused and lingering: the client has read the answer
        if self.parsing is not None:
            return False  # a request cut off half-way can never complete: close (and abandon)
        return self.current is not None  # keep the write side open to finish the answer

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        transport, self.transport = self.transport, None
        self.router.connections.discard(self)
        if transport is None:
            return
        if self.current is not None:
            self.current.abandon()
        while self.queue:
            self.queue.popleft().abandon()

    def pause_writing(self) -> None:
        self.write_paused = True
        current = self.current
        if current is not None and current.upstream is not None:
            current.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.write_paused = False
        current = self.current
        if current is not None and current.upstream is not None:
            current.upstream.resume_reading()

    # ---- httptools callbacks ------------------------------------------------------------
    # There is no on_message_begin: the first on_url of a request starts its Exchange, which
    # saves one callback per request (every request line has a URL, and llhttp reports it
    # before any header).
    def on_url(self, url: bytes) -> None:
        ex = self.parsing
        if ex is None:
            self.parsing = ex = Exchange(self, self.router)
            ex.url = url
            size = len(url)
        else:  # the URL arrives in pieces (one per read): it counts as it comes
            ex.url += url  # at most _MAX_HEADER_BYTES in all, so the copies stay bounded
            size = self.header_bytes + len(url)
        self.header_bytes = size
        if size > _MAX_HEADER_BYTES:
            raise _Refused(414, f"request URL exceeds {_MAX_HEADER_BYTES} bytes")

    # The callbacks below run several times per request: no asserts (each is a few bytecodes
    # at run time), the annotation alone tells the type checker that a request is being parsed.
    def on_header(self, name: bytes, value: bytes) -> None:
        ex: Exchange = self.parsing  # type: ignore[assignment] # on_url made it
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > _MAX_HEADER_BYTES:
            raise _Refused(431, f"request line and headers exceed {_MAX_HEADER_BYTES} bytes")
        lname = name.lower()
        kind = _SPECIAL.get(lname)  # one dict lookup decides for every header
        if kind == _DROP:
            return  # host and hop-by-hop headers, replaced or not forwarded
        if kind is None:
            if not lname.startswith(_WR_PREFIX):
                ex.headers += (name, b": ", value, b"\r\n")  # joined once, in request_head
            elif self.mode != EXTERNAL:  # never trust routing headers from outside
                if ex.wr_other is None:
                    ex.wr_other = []
                ex.wr_other += (name, b": ", value, b"\r\n")
        elif kind < _WR_FIRST:
            if kind == _CONTENT_LENGTH:
                ex.has_body = value != b"0"
                ex.headers += (b"content-length: ", value, b"\r\n")
            elif kind == _TRANSFER_ENCODING:
                ex.chunked = ex.has_body = True
            elif kind == _TRACEPARENT:
                ex.traceparent = value
            elif kind == _EXPECT:
                ex.expect_continue = value.lower() == b"100-continue"
                ex.headers += (name, b": ", value, b"\r\n")
            elif kind == _CONNECTION:
                self.connection_header = True
        elif self.mode == EXTERNAL:
            return
        elif kind == _DESTINATION:
            ex.destination = value
        elif kind == _VERSION:
            ex.version_req = value
        elif kind == _VIA:
            ex.via = value if ex.via is None else ex.via + b", " + value
        elif kind == _SOURCE:
            ex.source = value
        elif kind == _SOURCE_NS:
            ex.source_ns = value
        # _WR_DROP: x-wr-module and x-wr-namespace are set by delivery, never forwarded

    def on_headers_complete(self) -> None:
        ex: Exchange = self.parsing  # type: ignore[assignment] # on_url made it
        self.head_deadline = 0.0
        self.head_read = 0
        parser = self.parser
        method = ex.method = parser.get_method()
        ex.head_only = method == b"HEAD"
        ex.keep_alive = parser.should_keep_alive()  # llhttp forgets it once the message ends
        # llhttp keeps an HTTP/1.0 connection alive only when a connection header says so, and
        # an upgrade needs "connection: upgrade": without one, keep-alive means an ordinary 1.1
        # request and the (slow, string-building) version call is not needed.
        if self.connection_header or not ex.keep_alive or method == b"CONNECT":
            self.connection_header = False  # reset only when set: one store less per request
            self._check_unusual(ex)
        if self.closing:
            return  # bytes after a request that closes the connection: not answered
        if self.current is None:
            self.current = ex
            ex.start()
        else:
            self.queue.append(ex)
            self.pause(PIPELINED)

    def on_body(self, body: bytes) -> None:
        self.parsing.request_body(body)  # type: ignore[union-attr] # on_url made it

    def on_message_complete(self) -> None:
        ex: Exchange = self.parsing  # type: ignore[assignment] # on_url made it
        self.parsing = None
        if ex.chunked or ex.response_done:
            ex.request_complete()
        else:  # what request_complete comes to for a plain request still being answered
            ex.request_done = True

    def _check_unusual(self, ex: Exchange) -> None:
        """HTTP/1.0, upgrades and CONNECT: refused here, before anything is forwarded."""
        parser = self.parser
        ex.http10 = parser.get_http_version() == "1.0"
        if parser.should_upgrade():  # llhttp decides it before on_headers_complete runs
            raise _Refused(501, _NO_UPGRADE)
        if ex.http10 and ex.chunked:  # RFC 9112 6.1: the framing is faulty; close after
            raise _Refused(400, "transfer-encoding is not allowed in an HTTP/1.0 request")

    # ---- used by exchanges --------------------------------------------------------------
    def pause(self, reason: int) -> None:
        if not self.pauses and self.transport is not None:
            self.transport.pause_reading()
        self.pauses |= reason

    def resume(self, reasons: int) -> None:
        if self.pauses & reasons:
            self.pauses &= ~reasons
            if not self.pauses and self.transport is not None:
                self.transport.resume_reading()

    def exchange_finished(self, ex: Exchange) -> None:
        """The exchange answered and consumed its request: close or go on with the next."""
        if ex is not self.current:
            return
        self.current = None
        if self.transport is None or self.closing:
            return
        if self.broken is not None and not self.queue:
            if self.broken[0]:  # status 0: bytes after "connection: close", left unanswered
                self.write_error(*self.broken, (), False, True)
            self.linger()
            return
        if ex.close_client or not ex.keep_alive or (self.eof and not self.queue):
            self.close()
            return
        if self.queue:
            following = self.current = self.queue.popleft()
            if not self.queue:
                self.resume(PIPELINED)
            following.start()
            return
        self.idle_deadline = self.router.idle_deadline

    def write_error(
        self,
        status: int,
        reason: str,
        headers: tuple[tuple[str, str], ...],
        head_only: bool,
        close: bool,
        http10_keep_alive: bool = False,
    ) -> None:
        transport = self.transport
        if transport is None or self.closing:
            return
        body = reason.encode("utf-8", "replace") + b"\n"
        lines = [
            b"HTTP/1.1 %d %s\r\n" % (status, _PHRASES.get(status, b"Error")),
            b"content-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n" % len(body),
            _PROXY_ERROR_LINE % self.router.node_id_bytes,
        ]
        lines.extend(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers)
        if close:
            lines.append(b"connection: close\r\n")
        elif http10_keep_alive:  # a 1.0 client takes a response without it as the last one
            lines.append(b"connection: keep-alive\r\n")
        lines.append(b"\r\n")
        if not head_only:
            lines.append(body)
        transport.write(b"".join(lines))

    def refuse(self, status: int, reason: str) -> None:
        """The byte stream cannot be parsed further: answer (after the requests before it,
        if any), then close."""
        if self.transport is None:
            return
        ex = self.current
        if ex is None:
            self.write_error(status, reason, (), False, True)
            self.linger()
        elif ex is not self.parsing:  # answer what came before first, then say what was wrong
            last = self.queue[-1] if self.queue else ex
            self.broken = (status, reason) if last.keep_alive else (0, "")
            self.pause(PIPELINED)
        elif ex.response_started:  # only closing can tell the client something went wrong
            self.close()
        else:
            ex.keep_alive = False
            ex.request_done = True
            self.broken = (0, "")  # so the connection lingers once the answer is out
            ex.fail(status, reason)  # does nothing when an answer of ours went out already,
            ex.finish()  # so the exchange ends here (finish runs once)

    def check_deadlines(self, now: float) -> None:
        """The sweep's visit (Router.sweep), for a connection with no request being answered:
        a head too slow to arrive gets 408, an idle connection is closed, a lingering one ends."""
        if self.closing:
            if self.linger_deadline and now >= self.linger_deadline and self.transport is not None:
                self.transport.abort()  # the client neither closed nor stopped sending
        elif self.parsing is not None and not self.head_deadline:
            # A head that began in a read that ended a body: timed from now (the data path
            # stamps only heads that begin a read, which saves a check per request).
            self.head_deadline = self.router.head_deadline
        elif self.head_deadline:
            # A head that began while the last answer was sent is timed from its end.
            router = self.router
            answered = self.idle_deadline - router.idle_timeout
            if now >= max(self.head_deadline, answered + router.header_timeout):
                timeout = router.header_timeout
                reason = f"request line and headers not received within {timeout:g} s"
                self.write_error(408, reason, (), False, True)
                self.linger()
        elif now >= self.idle_deadline:
            self.close()

    def close(self) -> None:
        """Close after what was written is sent; reading and answering stop now."""
        if self.transport is not None and not self.closing:
            self.closing = True
            self.transport.close()

    def linger(self) -> None:
        """Close after a refusal: send what was written and a FIN, then drop what the client
        still sends until it closes too or LINGER_SECS pass (see check_deadlines)."""
        transport = self.transport
        if transport is None or self.closing:
            return
        if self.current is not None or not transport.can_write_eof():  # TLS cannot half-close
            self.close()
            return
        self.closing = True
        transport.write_eof()
        self.linger_deadline = self.router.clock + LINGER_SECS
        if self.pauses:
            self.pauses = 0
            transport.resume_reading()

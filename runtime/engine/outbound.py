"""Outbound calls from guests: sent to the node proxy with x-wr-* headers; bodies up to
wire.INLINE_BODY_MAX are inline, larger ones are files in the guest's /wr-io.

Everything the guest hands over is checked before the connection is touched (http.client
marks a connection busy before it validates the request line, so a bad URL used to leave the
thread's keep-alive connection half-started for the next caller), and any failure mid-call
drops the connection.
"""

from __future__ import annotations

import http.client
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from runtime import wire
from runtime.engine import tracecontext
from runtime.engine.scratch import GuestFileError, io_file, take_guest_file, write_host_file

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "host",
    "content-length",
    "traceparent",
    "tracestate",
}


class OutboundError(Exception):
    """A call that got no response; the text is what the guest's `send` returns as its error."""


class InvalidRequest(OutboundError):
    """A request the guest built that cannot be sent (URL, method, headers, body)."""

    def __init__(self, problem: str) -> None:
        super().__init__(wire.INVALID_CALL_PREFIX + problem)


@dataclass
class CallContext:
    """Who is calling, and until when (set per request by the worker)."""

    module: str
    namespace: str
    traceparent: str | None
    deadline: float  # time.monotonic() after which no call may start or continue
    io_dir: Path
    max_body: int  # the most bytes of a request body or a reply
    io_room: Callable[[], int]  # bytes the guest's /wr-io may still take

    def trace_parent(self) -> str:
        """The request's trace context: the incoming one, or one made up once per request."""
        self.traceparent = tracecontext.outbound(self.traceparent)
        return self.traceparent

    def trace_id(self) -> str:
        return self.trace_parent().split("-")[1]


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes  # inline (at most wire.INLINE_BODY_MAX), else empty and in body_file
    body_file: str | None
    body_size: int


@dataclass
class Exchange:
    """A checked request, ready to send."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    url: str


class ProxyClient:
    """One keep-alive connection to the node proxy per thread."""

    def __init__(self, proxy_address: str, engine_id: str = "") -> None:
        """engine_id: this engine's, sent on every call (wire.CALLER_ENGINE_HEADER)."""
        parts = urlsplit(proxy_address)
        if parts.hostname is None:
            raise ValueError(f"proxy_address {proxy_address!r} has no host")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._local = threading.local()
        self._counter = 0
        self._engine_id = engine_id

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=timeout)
            self._local.conn = conn
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def prepare(
        self,
        ctx: CallContext,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body_file: str | None,
        version: str | None,
        body: bytes = b"",
    ) -> Exchange:
        """Check what the guest asks for and build the request (its body inline, or read from
        its body file); InvalidRequest says what is wrong. Touches no connection."""
        parts = check_request(method, url, headers)
        body = _take_body(ctx, body_file, body)
        out = [
            (k, v)
            for k, v in headers
            if k.lower() not in HOP_BY_HOP and not k.lower().startswith(wire.INTERNAL_HEADER_PREFIX)
        ]
        out += [
            ("host", parts.netloc),
            (wire.DESTINATION_HEADER, url),
            (wire.SOURCE_HEADER, ctx.module),
            (wire.SOURCE_NS_HEADER, ctx.namespace),
            ("traceparent", ctx.trace_parent()),
            ("content-length", str(len(body))),
        ]
        if self._engine_id:
            out.append((wire.CALLER_ENGINE_HEADER, self._engine_id))
        if version:
            out.append((wire.VERSION_HEADER, _header_value(wire.VERSION_HEADER, version)))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return Exchange(method, path, out, body, url)

    def deliver(self, ctx: CallContext, call: Exchange) -> Reply:
        """Send a prepared request through the proxy; the reply body comes back inline when
        small, else in a /wr-io file."""
        remaining = ctx.deadline - time.monotonic()
        if remaining <= 0:
            raise OutboundError("the request deadline passed before the call started")
        data, status, reply_headers = self._exchange(call, remaining, ctx.max_body)
        if len(data) <= wire.INLINE_BODY_MAX:
            return Reply(status, reply_headers, data, None, len(data))
        if len(data) > ctx.io_room():
            raise OutboundError(
                f"{call.method} {call.url}: no room for the reply's {len(data)} bytes in "
                f"{wire.GUEST_IO_DIR} (twice max_body_mb in all)"
            )
        self._counter += 1
        name = f"reply-{threading.get_ident()}-{self._counter}.body"
        try:
            write_host_file(io_file(ctx.io_dir, name), data)
        except GuestFileError as exc:
            raise OutboundError(str(exc)) from None
        return Reply(status, reply_headers, b"", name, len(data))

    def _exchange(
        self, call: Exchange, timeout: float, limit: int
    ) -> tuple[bytes, int, list[tuple[str, str]]]:
        """Send call and read the reply (at most limit bytes of body) on this thread's
        connection; any failure drops the connection, so it is never left half-used."""
        for attempt in (1, 2):
            conn = self._connection(timeout)
            try:
                return self._round_trip(conn, call, limit)
            except _Retry:
                self._drop()
                if attempt == 2:
                    raise OutboundError(
                        f"{call.method} {call.url}: the proxy closed the connection"
                    ) from None
            except BaseException:
                self._drop()
                raise
        raise AssertionError("unreachable")

    def _round_trip(
        self, conn: http.client.HTTPConnection, call: Exchange, limit: int
    ) -> tuple[bytes, int, list[tuple[str, str]]]:
        sent = False
        where = f"{call.method} {call.url}"
        try:
            conn.putrequest(call.method, call.path, skip_host=True, skip_accept_encoding=True)
            for k, v in call.headers:
                conn.putheader(k, v)
            conn.endheaders(call.body)
            sent = True
            resp = conn.getresponse()
            if resp.length is not None and resp.length > limit:
                raise _too_large(where, limit)
            data = resp.read(limit + 1)
            if len(data) > limit:
                raise _too_large(where, limit)
            if resp.will_close or not resp.isclosed():
                self._drop()
            return data, resp.status, [(k.lower(), v) for k, v in resp.getheaders()]
        except TimeoutError:
            raise OutboundError(f"{where}: the request deadline passed") from None
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            # A pooled connection the proxy closed meanwhile: retried once on a new one, but
            # only when the proxy cannot have acted on it (not fully sent, or no body).
            if sent and call.body:
                raise OutboundError(f"{where}: the proxy closed the connection") from None
            raise _Retry from None
        except OSError as exc:
            raise OutboundError(f"{where}: proxy unreachable: {exc}") from None
        except http.client.HTTPException as exc:
            raise OutboundError(f"{where}: bad reply from the proxy: {exc!r}") from None


class _Retry(Exception):
    """The pooled connection was closed before the request could have been acted on."""


def _too_large(where: str, limit: int) -> OutboundError:
    return OutboundError(f"{where}: reply body over the module's limit of {limit} bytes")


# An HTTP token (RFC 9110), and what a header value or a request target may not contain.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(r"[^\t\x20-\x7e\x80-\xff]")
_BAD_URL = re.compile(r"[^\x21-\x7e]")


def check_request(method: str, url: str, headers: list[tuple[str, str]]) -> SplitResult:
    """The parts of url when the request can be sent as it is; else InvalidRequest says why."""
    if not _TOKEN.fullmatch(method):
        raise InvalidRequest(f"method {method!r} is not an HTTP method token")
    bad = _BAD_URL.search(url)
    if bad:
        raise InvalidRequest(
            f"URL {url!r} contains {bad.group()!r}: percent-encode spaces, control and "
            "non-ASCII characters"
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError as exc:
        raise InvalidRequest(f"URL {url!r}: {exc}") from None
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise InvalidRequest(f"URL {url!r}: expected an absolute http:// URL")
    size = 0
    for name, value in headers:
        if not _TOKEN.fullmatch(name):
            raise InvalidRequest(f"header name {name!r} is not an HTTP token")
        _header_value(name, value)
        size += len(name) + len(value)
    if size > wire.MAX_HEADER_BYTES:
        raise InvalidRequest(f"headers of {size} bytes, over {wire.MAX_HEADER_BYTES}")
    return parts


def _header_value(name: str, value: str) -> str:
    bad = _BAD_VALUE.search(value)
    if bad:
        raise InvalidRequest(f"header {name!r} contains {bad.group()!r}")
    return value


def _take_body(ctx: CallContext, body_file: str | None, inline: bytes) -> bytes:
    if len(inline) > wire.INLINE_BODY_MAX:
        raise InvalidRequest(
            f"an inline body of {len(inline)} bytes, over {wire.INLINE_BODY_MAX}: "
            f"larger bodies go in a file in {wire.GUEST_IO_DIR}"
        )
    if not body_file:
        return inline
    if inline:
        raise InvalidRequest("a body both inline and in a file: send one of them")
    try:
        return take_guest_file(io_file(ctx.io_dir, body_file), ctx.max_body)
    except GuestFileError as exc:
        raise InvalidRequest(str(exc)) from None

"""Outbound calls from guests: sent to the node proxy with x-wr-* headers; bodies are files."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from runtime import wire
from runtime.engine import tracecontext

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


@dataclass
class CallContext:
    """Who is calling, and until when (set per request by the worker)."""

    module: str
    namespace: str
    traceparent: str | None
    deadline: float  # time.monotonic() after which no call may start or continue
    io_dir: Path


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body_file: str
    body_size: int


def _io_path(io_dir: Path, name: str) -> Path:
    if not name or "/" in name or name in {".", ".."}:
        raise OutboundError(
            f"body-file {name!r}: expected a plain file name inside {wire.GUEST_IO_DIR}"
        )
    return io_dir / name


class ProxyClient:
    """One keep-alive connection to the node proxy per thread."""

    def __init__(self, proxy_address: str) -> None:
        parts = urlsplit(proxy_address)
        if parts.hostname is None:
            raise ValueError(f"proxy_address {proxy_address!r} has no host")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._local = threading.local()
        self._counter = 0

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

    def send(
        self,
        ctx: CallContext,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body_file: str | None,
        version: str | None,
    ) -> Reply:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise OutboundError(f"{url!r}: expected an absolute http:// URL")
        body = _io_path(ctx.io_dir, body_file).read_bytes() if body_file else b""
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
            ("traceparent", tracecontext.outbound(ctx.traceparent)),
            ("content-length", str(len(body))),
        ]
        if version:
            out.append((wire.VERSION_HEADER, version))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        remaining = ctx.deadline - time.monotonic()
        if remaining <= 0:
            raise OutboundError("the request deadline passed before the call started")
        data, status, reply_headers = self._exchange(method, path, out, body, remaining, url)
        self._counter += 1
        name = f"reply-{threading.get_ident()}-{self._counter}.body"
        _io_path(ctx.io_dir, name).write_bytes(data)
        return Reply(status, reply_headers, name, len(data))

    def _exchange(
        self,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        timeout: float,
        url: str,
    ) -> tuple[bytes, int, list[tuple[str, str]]]:
        for attempt in (1, 2):
            conn = self._connection(timeout)
            sent = False
            try:
                conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for k, v in headers:
                    conn.putheader(k, v)
                conn.endheaders(body)
                sent = True
                resp = conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self._drop()
                return data, resp.status, [(k.lower(), v) for k, v in resp.getheaders()]
            except TimeoutError:
                self._drop()
                raise OutboundError(f"{method} {url}: the request deadline passed") from None
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A pooled connection the proxy closed meanwhile. Retry once on a new one, but
                # only when the proxy cannot have acted on the request (not fully sent, or no
                # body to replay).
                self._drop()
                if attempt == 2 or (sent and body):
                    raise OutboundError(
                        f"{method} {url}: the proxy closed the connection"
                    ) from None
            except OSError as exc:
                self._drop()
                raise OutboundError(f"{method} {url}: proxy unreachable: {exc}") from None
        raise AssertionError("unreachable")

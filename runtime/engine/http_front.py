"""The engine's HTTP/1.1 listener: one asyncio Protocol per connection, parsed by httptools.

It replaced aiohttp on this port because the front's share of a small request is pure
overhead: framework request/response objects, header multidicts and a task per handler.
Keep-alive, pipelining (requests parsed ahead wait in a queue, reading paused) and
`Expect: 100-continue` are handled here; a request body larger than ipc.INLINE_MAX is written
to a file on the scratch tmpfs as it arrives, which the worker then moves into the guest's
directory (the body is never joined in the front's memory). A body over its module's
max_body_mb is refused with 413 as soon as that is known (from content-length, before any of
it is read, and before `100 Continue`).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
from http import HTTPStatus
from pathlib import Path
from typing import cast

import httptools

from runtime.engine.ipc import INLINE_MAX
from runtime.engine.pool import Reply
from runtime.engine.server import Front, IncomingRequest
from runtime.wire import MAX_HEADER_BYTES

log = logging.getLogger("wr-engine.front")

IDLE_SECS = 75.0  # a keep-alive connection with no request for this long is closed
LINGER_SECS = 2.0  # after a refusal, input is read and dropped this long before closing
_PHRASES = {s.value: s.phrase.encode() for s in HTTPStatus}
_NO_BODY_STATUS = frozenset({204, 304})
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Listener:
    """Shared by the connections of one listening socket: the front, the spill directory and
    the set of open connections (closed on stop)."""

    def __init__(self, front: Front, spill_dir: Path, idle_secs: float = IDLE_SECS) -> None:
        self.front = front
        self.idle_secs = idle_secs
        self.spill_dir = spill_dir
        spill_dir.mkdir(parents=True, exist_ok=True)
        self.connections: set[EngineConnection] = set()
        self._spill_ids = itertools.count()

    def spill_path(self) -> Path:
        return self.spill_dir / f"in-{next(self._spill_ids)}"

    def close_all(self) -> None:
        for conn in list(self.connections):
            conn.close()


class _Body:
    """A request body being received: in memory up to INLINE_MAX, then in a spill file; never
    more than its module's max_body_mb (413 past it)."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = 0  # set once the headers say which module the request is for
        self.path: Path | None = None
        self._fd = -1

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise _BadRequest(413, f"request body over the limit of {self.limit} bytes")
        if self._fd < 0:
            self.chunks.append(data)
            if self.size <= INLINE_MAX:
                return
            self.path = self._listener.spill_path()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            data, self.chunks = b"".join(self.chunks), []
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def finish(self) -> tuple[bytes, Path | None]:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
            return b"", self.path
        return b"".join(self.chunks), None

    def discard(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self.path is not None:
            self.path.unlink(missing_ok=True)


class EngineConnection(asyncio.Protocol):
    """One inbound HTTP/1.x connection; requests are answered in order."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[tuple[IncomingRequest, bool]] = collections.deque()
        self.serving: asyncio.Task[None] | None = None
        self.paused = False
        self.refusal: Reply | None = None  # sent (then close) once the answers owed are out
        self._idle: asyncio.TimerHandle | None = None
        # the request being parsed
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._body: _Body | None = None
        self._request: IncomingRequest | None = None

    # -- asyncio callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.listener.connections.add(self)
        self._arm_idle()

    def data_received(self, data: bytes) -> None:
        if self.refusal is not None:
            return  # the stream is unreadable past the refused request
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _BadRequest):
                self._refuse(cause.status, str(cause))
            else:
                log.error("internal error reading a request", exc_info=cause)
                self._refuse(500, "internal engine error")
        except httptools.HttpParserUpgrade:
            self._refuse(501, "protocol upgrades and CONNECT are not supported")
        except httptools.HttpParserError as exc:
            self._refuse(400, f"malformed HTTP request: {exc}")

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._disarm_idle()
        self.listener.connections.discard(self)
        if self._body is not None:
            self._body.discard()
            self._body = None
        while self.queue:
            request, _ = self.queue.popleft()
            if request.body_file is not None:
                request.body_file.unlink(missing_ok=True)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.serving is not None:
            self.serving.cancel()

    # -- httptools callbacks -------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._disarm_idle()
        self._url = b""
        self._headers = []
        self._header_bytes = 0
        self._body = _Body(self.listener)
        self._request = None

    def on_url(self, url: bytes) -> None:
        self._header_bytes += len(url)  # the request line counts against the header limit
        if self._header_bytes > MAX_HEADER_BYTES:
            raise _BadRequest(414, f"request target over {MAX_HEADER_BYTES} bytes")
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value)
        if self._header_bytes > MAX_HEADER_BYTES:
            raise _BadRequest(431, f"request headers exceed {MAX_HEADER_BYTES} bytes")
        self._headers.append((name.decode("latin-1").lower(), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        assert self._body is not None
        request = IncomingRequest(
            self.parser.get_method().decode("ascii"), self._url.decode("latin-1"), self._headers
        )
        limit = self._body.limit = self.listener.front.admit(request)
        declared = request.header_map.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:  # refused before any body is read
            where = f" of module {request.module}" if request.module else ""
            raise _BadRequest(
                413,
                f"request body of {declared} bytes is over the limit{where} of {limit} bytes "
                "(max_body_mb)",
            )
        self._request = request
        if request.header_map.get("expect", "").lower() == "100-continue" and self.transport:
            self.transport.write(_CONTINUE)

    def on_body(self, data: bytes) -> None:
        assert self._body is not None
        self._body.add(data)

    def on_message_complete(self) -> None:
        assert self._body is not None and self._request is not None
        request = self._request
        request.body, request.body_file = self._body.finish()
        self._body = self._request = None
        self.queue.append((request, self.parser.should_keep_alive()))
        if self.serving is None:
            self.serving = asyncio.ensure_future(self._serve())
        elif not self.paused and self.transport is not None:
            self.paused = True  # pipelined: read on once the queue is answered
            self.transport.pause_reading()

    # -- answering -----------------------------------------------------------------------------

    async def _serve(self) -> None:
        try:
            while self.queue and self.transport is not None:
                request, keep_alive = self.queue.popleft()
                try:
                    reply = await self.listener.front.answer(request)
                except Exception:
                    log.exception("internal error answering a request")
                    reply = Reply(500, [("content-type", "text/plain")], b"internal engine error\n")
                finally:
                    if request.body_file is not None:
                        request.body_file.unlink(missing_ok=True)
                if self.transport is None:
                    return
                self._write(reply, request.method == "HEAD", keep_alive)
                if not keep_alive:
                    self.transport.close()
                    return
            if self.refusal is not None and self.transport is not None:
                self._write(self.refusal, False, False)
                self._linger()
            elif self.paused and self.transport is not None:
                self.paused = False
                self.transport.resume_reading()
        finally:
            self.serving = None
            if self._body is None and not self.queue:
                self._arm_idle()  # nothing being received or owed: wait for the next request

    def _arm_idle(self) -> None:
        if self.transport is not None and self._idle is None:
            loop = asyncio.get_running_loop()
            self._idle = loop.call_later(self.listener.idle_secs, self._idle_timeout)

    def _disarm_idle(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def _idle_timeout(self) -> None:
        self._idle = None
        if self.transport is not None and self.serving is None and self._body is None:
            self.transport.close()

    def _write(self, reply: Reply, head_only: bool, keep_alive: bool) -> None:
        assert self.transport is not None
        status = reply.status
        lines: list[bytes | memoryview] = [
            b"HTTP/1.1 %d %s\r\n" % (status, _PHRASES.get(status, b"Unknown"))
        ]
        has_type = False
        for name, value in reply.headers:
            if _unsafe(name) or _unsafe(value):
                continue  # a guest's header that would break the framing: left out
            has_type = has_type or name.lower() == "content-type"
            lines.append(f"{name}: {value}\r\n".encode())
        body = reply.body
        if status in _NO_BODY_STATUS or 100 <= status < 200:
            body = b""
        else:
            if body and not has_type:
                lines.append(b"content-type: application/octet-stream\r\n")
            lines.append(b"content-length: %d\r\n" % len(body))
        if not keep_alive:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        if head_only or not body:
            self.transport.write(b"".join(lines))
        elif len(body) <= INLINE_MAX:
            lines.append(body)
            self.transport.write(b"".join(lines))
        else:  # no concatenated copy of a large body
            self.transport.writelines((b"".join(lines), body))

    def _linger(self) -> None:
        """Close after a refusal. The client may still be sending (a body over the limit):
        closing with unread input makes the kernel send a reset, which can destroy the answer
        before the client reads it. So stop writing, read and drop its input for a moment,
        then close."""
        assert self.transport is not None
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(LINGER_SECS, self.close)

    def _refuse(self, status: int, message: str) -> None:
        """Answer an unreadable request and close, after the answers owed before it."""
        if self._body is not None:
            self._body.discard()
            self._body = None
        self._request = None
        if self.transport is None:
            return
        self.refusal = Reply(
            status, [("content-type", "text/plain; charset=utf-8")], (message + "\n").encode()
        )
        if self.serving is None:
            self.serving = asyncio.ensure_future(self._serve())


def _unsafe(text: str) -> bool:
    return "\r" in text or "\n" in text

"""One request/response exchange: route it, stream the request up and relay the response back."""

from __future__ import annotations

import logging
import ssl
from time import perf_counter
from typing import TYPE_CHECKING

from opentelemetry.trace import Span

from runtime.proxy.breaker import CLOSED
from runtime.proxy.routing import Candidate, CandidateGroup, RouteError

if TYPE_CHECKING:
    from runtime.proxy.client import ClientConnection
    from runtime.proxy.destination import Destination
    from runtime.proxy.metrics import DestinationStats
    from runtime.proxy.router import Router
    from runtime.proxy.upstream import UpstreamConnection

log = logging.getLogger("wr-proxy.exchange")

CONNECTING = 4  # client read-pause reason: waiting for an upstream connection
UPSTREAM_FULL = 2  # client read-pause reason: the upstream's write buffer is full
IDEMPOTENT = frozenset((b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"))
_MAX_RETRIES = 2
_CHUNK_END = b"0\r\n\r\n"


class Exchange:
    """State of one request from its headers to the end of its response."""

    __slots__ = (
        "candidate",
        "chunked",
        "client",
        "close_client",
        "dest",
        "destination",
        "expect_continue",
        "finished",
        "fresh",
        "group",
        "has_body",
        "head_only",
        "head_received",
        "headers",
        "http10",
        "keep_alive",
        "label",
        "last_error",
        "method",
        "pending",
        "request_done",
        "response_done",
        "response_started",
        "retries",
        "router",
        "source",
        "source_ns",
        "span",
        "stats",
        "status",
        "t0",
        "trace_line",
        "traceparent",
        "tried",
        "upstream",
        "url",
        "version_req",
        "via",
        "wr_other",
    )

    def __init__(self, client: ClientConnection, router: Router) -> None:
        self.client = client
        self.router = router
        self.method = b"GET"
        self.url = b""
        self.headers: list[bytes] = []  # forwarded header lines, as pieces to join
        self.wr_other: list[bytes] | None = None  # other x-wr-* lines, as pieces to join
        self.destination: bytes | None = None
        self.version_req: bytes | None = None
        self.via: bytes | None = None
        self.source: bytes | None = None
        self.source_ns: bytes | None = None
        self.traceparent: bytes | None = None
        self.http10 = False
        self.keep_alive = True
        self.chunked = False
        self.has_body = False
        self.expect_continue = False
        self.head_only = False
        self.dest: Destination | None = None
        self.group: CandidateGroup | None = None
        self.candidate: Candidate | None = None
        self.tried: list[Candidate] | None = None
        self.upstream: UpstreamConnection | None = None
        self.pending: list[bytes] | None = None
        self.label = "-"
        self.status = 0
        self.span: Span | None = None
        self.trace_line = b""
        self.last_error = ""
        self.request_done = False
        self.response_done = False
        self.response_started = False
        self.head_received = False
        self.close_client = False
        self.finished = False
        self.fresh = False
        self.retries = 0
        self.stats: DestinationStats | None = None  # set by a cached plan
        self.t0 = 0.0  # also the start of the request deadline (Router.sweep)

    def span_description(self) -> tuple[str, dict[str, str]]:
        """Name and attributes of this hop's span (asked only for sampled requests)."""
        # Few attributes: each costs the SDK and the exporter per span; the node is a resource
        # attribute (see ProxyServer), and an absent source is left out rather than sent empty.
        attributes = {
            "wr.destination": (self.destination or b"").decode("latin-1"),
            "http.request.method": self.method.decode("latin-1"),
        }
        if self.source is not None:
            attributes["wr.source"] = self.source.decode("latin-1")
        return f"wr-proxy {self.label}", attributes

    # ---- request side (called by the client connection) ----------------------------------
    def start(self) -> None:
        """Route the request and send it to an upstream (the headers are complete)."""
        router = self.router
        self.t0 = perf_counter()
        try:
            router.plan(self)
        except RouteError as exc:
            self.fail(exc.status, exc.reason, exc.headers)
            return
        self._dispatch()

    def request_body(self, data: bytes) -> None:
        if self.response_done:
            return  # answered already (error or early response): the rest is dropped
        upstream = self.upstream
        if upstream is not None:
            if self.chunked:
                assert upstream.transport is not None
                upstream.transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
            else:
                upstream.write(data)
            return
        framed = b"%x\r\n%s\r\n" % (len(data), data) if self.chunked else data
        if self.pending is None:
            self.pending = [framed]
        else:
            self.pending.append(framed)

    def request_complete(self) -> None:
        self.request_done = True
        if self.response_done:
            self.finish()
            return
        if self.chunked:
            if self.upstream is not None:
                self.upstream.write(_CHUNK_END)
            elif self.pending is None:
                self.pending = [_CHUNK_END]
            else:
                self.pending.append(_CHUNK_END)

    # ---- choosing and reaching an upstream ----------------------------------------------
    def _dispatch(self) -> None:
        group: CandidateGroup = self.group  # type: ignore[assignment] # planned
        candidate = group.choose(self.tried)
        if candidate is None:
            if self.tried:
                self.fail(502, self.last_error or f"no instance of {self.label} could be reached")
            else:
                retry = str(group.retry_after())
                reason = f"circuit open for every instance of {self.label}"
                self.fail(503, reason, (("retry-after", retry),))
            return
        self.candidate = candidate
        conn = None if self.fresh else self.router.pool.take_idle(candidate.upstream.key)
        if conn is not None:
            self._attach(conn)
            return
        self.client.pause(CONNECTING)
        self.router.loop.create_task(self._connect(candidate))

    async def _connect(self, candidate: Candidate) -> None:
        router = self.router
        try:
            conn = await router.pool.connect(candidate.upstream)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            if self.response_done:
                return
            candidate.breaker.failure()
            self._tried(candidate)
            self.last_error = f"cannot connect to {candidate.upstream.address}: {exc or 'timeout'}"
            self._dispatch()
            return
        router.metrics.upstream_connects.inc()
        if self.response_done:  # timed out or the client left meanwhile: keep the connection
            router.pool.release(conn)
            return
        self._attach(conn)

    def _tried(self, candidate: Candidate) -> None:
        if self.tried is None:
            self.tried = [candidate]
        else:
            self.tried.append(candidate)

    def _attach(self, conn: UpstreamConnection) -> None:
        self.upstream = conn
        conn.begin(self, self.head_only)
        head = self.router.request_head(self, self.candidate)  # type: ignore[arg-type] # chosen
        if self.pending is not None:
            head = b"".join((head, *self.pending))
            self.pending = None
        conn.transport.write(head)  # type: ignore[union-attr] # set once connected
        client = self.client
        if client.write_paused:
            conn.pause_reading()
        if client.pauses:
            client.resume(CONNECTING)

    # ---- response side (called by the upstream connection, which also relays the bytes) --
    def on_response_head(self, status: int, keep_alive: bool) -> None:
        self.status = status
        self.head_received = True  # the request deadline covers the wait for headers only
        if not keep_alive:
            self.close_client = True  # the relayed response tells the client so, or ends at EOF
        candidate = self.candidate
        if candidate is not None:
            breaker = candidate.breaker
            if status >= 500 or status == 429:
                breaker.failure()
            elif breaker.failures or breaker.state != CLOSED:
                breaker.success()  # otherwise there is nothing to reset

    def on_response_complete(self) -> None:
        conn = self.upstream
        self.response_done = True
        if conn is not None and conn.keep_alive and self.request_done:
            self.upstream = None
            self.router.pool.release(conn)
        else:  # unread request body or "connection: close": the connection cannot be reused
            self._drop_upstream()
        if self.request_done:
            self.finish()

    def on_response_invalid(self, reason: str) -> None:
        if self.response_done:
            return  # extra bytes after a complete response: only the connection suffers
        if self.candidate is not None:
            self.candidate.breaker.failure()
        if self.response_started:
            self._cut(502)
        else:
            self.fail(502, reason)

    def on_upstream_lost(self, conn: UpstreamConnection) -> None:
        self.upstream = None
        self.client.resume(UPSTREAM_FULL)
        if self.response_done:
            return
        if self.response_started:
            self._cut(self.status or 502)  # ends an EOF-delimited body; truncates any other
            return
        candidate = self.candidate
        assert candidate is not None
        address = candidate.upstream.address
        if not conn.reused:
            candidate.breaker.failure()
        may_retry = not self.has_body and (conn.reused or self.method in IDEMPOTENT)
        if may_retry and self.retries < _MAX_RETRIES:
            self.retries += 1
            self.router.metrics.retries.inc()
            if conn.reused:
                self.fresh = True  # the pool may hold more stale connections to it
            else:
                self._tried(candidate)
            self.last_error = f"upstream {address} closed the connection before responding"
            self._dispatch()
            return
        self.fail(502, f"upstream {address} closed the connection before responding")

    def on_upstream_paused(self, paused: bool) -> None:
        if paused:
            self.client.pause(UPSTREAM_FULL)
        else:
            self.client.resume(UPSTREAM_FULL)

    # ---- endings ------------------------------------------------------------------------
    def _drop_upstream(self) -> None:
        """Close the upstream connection (if any) and undo the pause its full buffer caused."""
        conn = self.upstream
        self.upstream = None
        if conn is not None:
            conn.close()
            self.client.resume(UPSTREAM_FULL)

    def on_deadline(self) -> None:
        """The request timeout passed before the response headers arrived."""
        if self.head_received or self.response_done:
            return
        timeout = self.router.request_timeout
        candidate = self.candidate
        if self._client_is_late():  # not the module's fault: its breaker does not count it
            if candidate is not None:
                candidate.breaker.release_probe()
            self.client.refuse(408, f"the request body did not arrive within {timeout:g} s")
            return
        self._drop_upstream()
        if candidate is not None:
            candidate.breaker.failure()
        if self.response_started:
            self._cut(504)
            return
        self.fail(504, f"{self.label} did not answer within {timeout:g} s")

    def _client_is_late(self) -> bool:
        """Is the request body what is missing, and the client to blame? Not when the proxy
        paused reading it (connecting, a full upstream buffer) or it waits for 100 Continue."""
        if self.request_done or self.client.pauses:
            return False
        return not self.expect_continue or self.response_started

    def fail(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        """Answer with an error of our own (nothing was relayed yet)."""
        if self.response_done:
            return
        self.status = status
        self.response_done = True
        self._drop_upstream()
        if status in (502, 504):  # an upstream misbehaved; the breaker bounds how often
            log.warning(
                "upstream failure answered with %d: %s",
                status,
                reason,
                extra={"destination": self.label, "status": status},
            )
        client = self.client
        client.resume(CONNECTING | UPSTREAM_FULL)
        if self.expect_continue and not self.request_done:
            # The client waits for "100 Continue" and may never send the body: the rest of
            # the stream cannot be parsed reliably, so answer and close.
            self.keep_alive = False
            self.request_done = True
        keep_alive = self.keep_alive
        client.write_error(
            status, reason, headers, self.head_only, not keep_alive, keep_alive and self.http10
        )
        if self.request_done:
            self.finish()

    def _cut(self, status: int) -> None:
        """End a response that was partly relayed: only closing the client can say so."""
        self.status = status
        self.response_done = True
        self.close_client = True
        self._drop_upstream()
        self.finish()

    def abandon(self) -> None:
        """The client went away: drop the upstream side and account for the request."""
        if self.finished:
            return
        if not self.head_received:
            self.status = 499
            if self.candidate is not None:
                self.candidate.breaker.release_probe()
        self.response_done = True
        self._drop_upstream()
        self.finish()

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        router = self.router
        stats = self.stats or router.metrics.stats(self.label)
        stats.observe(self.status, perf_counter() - self.t0)
        if self.span is not None:
            candidate = self.candidate
            router.tracer.end(
                self.span,
                self.status,
                candidate.upstream.address if candidate else "",
                candidate.version if candidate else "",
            )
        self.client.exchange_finished(self)

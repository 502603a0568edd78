"""Per-request decisions shared by all connections: where a request goes and what is sent."""

from __future__ import annotations

import asyncio
from time import perf_counter
from typing import TYPE_CHECKING

from runtime import wire
from runtime.proxy.breaker import BreakerRegistry
from runtime.proxy.client import EXTERNAL, INTERNAL, PEER
from runtime.proxy.destination import (
    BadDestination,
    Destination,
    DestinationParser,
    egress_label,
    shape_problem,
)
from runtime.proxy.egress import EgressPolicy
from runtime.proxy.ingress import IngressRouter
from runtime.proxy.metrics import DestinationStats, ProxyMetrics
from runtime.proxy.routing import Candidate, CandidateGroup, RouteError, RoutingIndex, Upstream
from runtime.proxy.tracing import HopTracer
from runtime.proxy.upstream import UpstreamPool

if TYPE_CHECKING:
    from runtime.proxy.client import ClientConnection
    from runtime.proxy.exchange import Exchange

# What every request with the same destination, x-wr-version and listener gets.
Plan = tuple[Destination, CandidateGroup, str, DestinationStats]
_PLAN_LIMIT = 4096  # plans kept per routing-table version (each a few small objects)
# Header line starts for a request that goes on to a peer proxy.
_VIA = wire.VIA_PROXY_HEADER.encode() + b": "
_DESTINATION = wire.DESTINATION_HEADER.encode() + b": "
_SOURCE = wire.SOURCE_HEADER.encode() + b": "
_SOURCE_NS = wire.SOURCE_NS_HEADER.encode() + b": "
_EXTERNAL_SOURCE = wire.EXTERNAL_SOURCE.encode()


class Router:
    """Routing state (the current index, egress policy, pool, breakers) and the per-request plan."""

    def __init__(
        self,
        *,
        node_id: str,
        own_peer_address: str,
        request_timeout: float,
        header_timeout: float = wire.HEADER_TIMEOUT_SECS,
        idle_timeout: float = wire.IDLE_TIMEOUT_SECS,
        egress: EgressPolicy,
        ingress: IngressRouter | None,
        pool: UpstreamPool,
        breakers: BreakerRegistry,
        metrics: ProxyMetrics,
        tracer: HopTracer,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.node_id = node_id
        self.node_id_bytes = node_id.encode()
        self._via_line = _VIA + self.node_id_bytes + b"\r\n"
        self.own_peer_address = own_peer_address
        self.request_timeout = request_timeout
        self.header_timeout = header_timeout
        self.idle_timeout = idle_timeout
        self.egress = egress
        self.ingress = ingress
        self.pool = pool
        self.breakers = breakers
        self.metrics = metrics
        self.tracer = tracer
        self.loop = loop
        self._index = RoutingIndex(None, own_peer_address, breakers)
        # (destination, x-wr-version, mode) -> the plan of such requests, for the current index;
        # and by destination alone the combination seen last: one bytes key to hash and two
        # compares, instead of building, hashing and comparing a tuple per request.
        self._plans: dict[tuple[bytes, bytes | None, int], Plan] = {}
        self._last_plans: dict[bytes, tuple[bytes | None, int, Plan]] = {}
        self.destinations = DestinationParser()
        self.connections: set[ClientConnection] = set()
        self._egress_groups: dict[tuple[str, int, bool], CandidateGroup] = {}
        self._jobs: CandidateGroup | None = None  # the job gateway (set_job_gateway)
        # A coarse loop clock, advanced by each sweep, and the deadlines a connection starting
        # to wait now gets: stamping one costs an attribute read instead of a clock call.
        self.clock = self.head_deadline = self.idle_deadline = 0.0
        self.tick(loop.time())

    def set_job_gateway(self, address: str) -> None:
        """Send this node's engines' calls to http://wr-jobs/... to the gateway at address."""
        upstream = Upstream(address)
        breaker = self.breakers.get(wire.JOBS_HOST, "", address)
        candidate = Candidate(wire.JOBS_HOST, "", "", "", upstream, breaker, local=True)
        self._jobs = CandidateGroup([candidate])

    @property
    def index(self) -> RoutingIndex:
        return self._index

    @index.setter
    def index(self, index: RoutingIndex) -> None:
        self._index = index
        self._plans = {}
        self._last_plans = {}

    def plan(self, ex: Exchange) -> None:
        """Resolve ex to a candidate group and start its span; RouteError when it cannot go."""
        mode = ex.client.mode
        if mode == EXTERNAL:
            self._ingress(ex)
        if ex.via is not None and self._is_loop(ex.via):
            raise RouteError(
                508,
                f"loop detected: this request already passed through node {self.node_id} "
                f"({wire.VIA_PROXY_HEADER}: {ex.via.decode('latin-1')})",
            )
        raw = ex.destination
        if raw is None:
            raise RouteError(
                400,
                f"missing {wire.DESTINATION_HEADER} header (expected http://namespace.module/path)",
            )
        last = self._last_plans.get(raw)
        if last is not None and last[0] == ex.version_req and last[1] == mode:
            ex.dest, ex.group, ex.label, ex.stats = last[2]
        else:
            self._plan_by_key(ex, raw, mode)
        if self.tracer.enabled:
            ex.span, ex.trace_line = self.tracer.begin(ex.traceparent, ex.span_description)
        elif ex.traceparent is not None:
            ex.trace_line = b"traceparent: " + ex.traceparent + b"\r\n"

    def _plan_by_key(self, ex: Exchange, raw: bytes, mode: int) -> None:
        key = (raw, ex.version_req, mode)
        plan = self._plans.get(key)
        if plan is None:
            self._resolve(ex, raw, mode)
            if len(self._plans) >= _PLAN_LIMIT:
                self._plans.clear()
                self._last_plans.clear()
            assert ex.dest is not None and ex.group is not None
            plan = self._plans[key] = (ex.dest, ex.group, ex.label, self.metrics.stats(ex.label))
        ex.dest, ex.group, ex.label, ex.stats = plan
        self._last_plans[raw] = (ex.version_req, mode, plan)

    def _resolve(self, ex: Exchange, raw: bytes, mode: int) -> None:
        try:
            dest = ex.dest = self.destinations.parse(raw)
        except BadDestination as exc:
            raise RouteError(400, str(exc)) from None
        ex.label = dest.label
        if dest.module is not None:
            assert dest.namespace is not None
            requirement = ex.version_req.decode("latin-1") if ex.version_req is not None else None
            try:
                ex.group = self.index.resolve(
                    dest.namespace, dest.module, requirement, mode == PEER
                )
            except RouteError as exc:
                if exc.status != 404 or mode != INTERNAL or not self.egress.allows(dest.host):
                    raise
                ex.group = self._egress_group(dest)
                ex.label = egress_label(dest.host)
        elif dest.host == wire.JOBS_HOST and self._jobs is not None:
            if mode != INTERNAL:
                raise RouteError(403, f"{wire.JOBS_HOST} is only for this node's engines")
            ex.group = self._jobs
        else:
            if dest.is_single_label and not self.egress.allows(dest.host):
                raise RouteError(400, shape_problem(raw, dest))
            if mode != INTERNAL:
                raise RouteError(403, f"egress to {dest.host} is only for this node's engines")
            if not self.egress.allows(dest.host):
                raise RouteError(403, self.egress.refusal(dest.host))
            ex.group = self._egress_group(dest)

    def request_head(self, ex: Exchange, candidate: Candidate) -> bytes:
        """The request line and headers sent to the chosen upstream."""
        dest: Destination = ex.dest  # type: ignore[assignment] # planned
        parts = [ex.method, dest.request_tail[ex.http10], *ex.headers]
        if candidate.module:
            parts.append(candidate.route_headers)
            if ex.wr_other is not None:
                parts += ex.wr_other
            if ex.via is None:
                parts.append(self._via_line)
            else:
                parts += (_VIA, ex.via, b", ", self.node_id_bytes, b"\r\n")
            if not candidate.local:  # the peer routes again from the destination
                parts += (_DESTINATION, ex.destination, b"\r\n")  # type: ignore[arg-type]
                if ex.source is not None:
                    parts += (_SOURCE, ex.source, b"\r\n")
                if ex.source_ns is not None:
                    parts += (_SOURCE_NS, ex.source_ns, b"\r\n")
        elif candidate.rule_id == wire.JOBS_HOST:  # the gateway records who submitted
            if ex.source is not None:
                parts += (_SOURCE, ex.source, b"\r\n")
            if ex.source_ns is not None:
                parts += (_SOURCE_NS, ex.source_ns, b"\r\n")
        parts.append(ex.trace_line)
        if ex.chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        return b"".join(parts)

    def tick(self, now: float) -> None:
        """Advance the coarse clock (a deadline stamped with it is early by a tick at most)."""
        self.clock = now
        self.head_deadline = now + self.header_timeout
        self.idle_deadline = now + self.idle_timeout

    def sweep(self) -> None:
        """Enforce the deadlines: a request's (504 when its response headers are late) and its
        connection's (ClientConnection.check_deadlines: slow heads, idle, lingering)."""
        # Only a connection's current exchange has been started; scanning the connections a
        # few times a second is cheaper than a timer per request or per connection.
        now = self.loop.time()
        self.tick(now)
        started_before = perf_counter() - self.request_timeout  # the clock of Exchange.t0
        late = []
        for conn in list(self.connections):
            ex = conn.current
            if ex is None:
                conn.check_deadlines(now)
            elif ex.t0 <= started_before and not ex.head_received and not ex.response_done:
                late.append(ex)
        for ex in late:
            ex.on_deadline()

    def close_idle(self) -> None:
        """Close the connections with no request being answered (when shutting down)."""
        for conn in list(self.connections):
            if conn.current is None:
                conn.close()

    def _ingress(self, ex: Exchange) -> None:
        assert self.ingress is not None
        match = self.ingress.match(ex.method.decode("latin-1"), ex.url.decode("latin-1"))
        route = match.route
        if route is None:
            headers = (("allow", match.allow),) if match.allow else ()
            raise RouteError(match.status, match.reason, headers)
        ex.destination = b"http://%s.%s%s" % (
            route.namespace.encode(),
            route.module.encode(),
            ex.url,
        )
        ex.source = _EXTERNAL_SOURCE

    def _is_loop(self, via: bytes) -> bool:
        return any(hop.strip() == self.node_id_bytes for hop in via.split(b","))

    def _egress_group(self, dest: Destination) -> CandidateGroup:
        key = (dest.host, dest.port, dest.tls)
        group = self._egress_groups.get(key)
        if group is None:
            scheme = "https" if dest.tls else "http"
            host = f"[{dest.host}]" if ":" in dest.host else dest.host
            upstream = Upstream(f"{scheme}://{host}:{dest.port}", public_tls=True)
            breaker = self.breakers.get(egress_label(dest.host), "", upstream.address)
            candidate = Candidate("egress", "", "", "", upstream, breaker, local=True)
            group = self._egress_groups[key] = CandidateGroup([candidate])
        return group

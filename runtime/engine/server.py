"""What the engine answers: `/__health`, `/metrics`, and module requests via the worker pool."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from runtime import wire
from runtime.engine.metrics import LATENCY, REQUESTS
from runtime.engine.pool import Reply, WorkerPool
from runtime.engine.routing import select_module
from runtime.engine.spec import ModuleSpec
from runtime.engine.tracing import request_span

log = logging.getLogger("wr-engine.front")

# Not passed to the guest, nor copied back from it: the front frames the messages itself.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "content-length",
        "upgrade",
        "proxy-connection",
        "te",
        "trailer",
        "expect",
    }
)

HealthReport = Callable[[], Awaitable[dict[str, object]]]


@dataclass
class IncomingRequest:
    """One parsed HTTP request. headers: lower-case names, in arrival order; the body is in
    `body`, or (a large one) in the file `body_file`, which the front removes afterwards."""

    method: str
    path_qs: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    body_file: Path | None = None
    header_map: dict[str, str] = field(default_factory=dict)  # first value of each name
    routed: bool = False  # module and guest_path are set (Front.admit)
    module: str | None = None  # `namespace.module`, None for the engine's own endpoints
    guest_path: str = ""

    def __post_init__(self) -> None:
        for name, value in self.headers:
            self.header_map.setdefault(name, value)


class Front:
    """Routes each request: engine endpoints, or a module via the worker pool."""

    def __init__(
        self,
        pool: WorkerPool,
        modules: dict[str, ModuleSpec],
        health: HealthReport,
        tracing: bool,
    ) -> None:
        """modules: the served modules by `namespace.module` (deadline and body limit);
        tracing: open a span per module request (tracing was set up)."""
        self.pool = pool
        self.modules = modules
        self.health = health
        self.tracing = tracing
        limits = [m.max_body_bytes for m in modules.values()]
        self._other_body_limit = max(limits, default=wire.BODY_LIMIT_MB << 20)

    def admit(self, request: IncomingRequest) -> int:
        """Route a request whose headers are in; the most body bytes it may then bring (its
        module's max_body_mb; for anything else the largest, to answer it with a 404)."""
        request.module, request.guest_path = select_module(request.header_map, request.path_qs)
        request.routed = True
        spec = self.modules.get(request.module) if request.module else None
        return spec.max_body_bytes if spec else self._other_body_limit

    async def answer(self, request: IncomingRequest) -> Reply:
        if not request.routed:
            self.admit(request)
        key = request.module
        if key is None:
            return await self._engine_endpoint(request)
        spec = self.modules.get(key)
        if spec is None:
            served = ", ".join(sorted(self.modules)) or "no modules"
            return _text(404, f"unknown module {key!r}: this engine serves {served}")
        started = time.perf_counter()
        reply = await self._forward(request, key, request.guest_path, spec.timeout_secs)
        if reply.error is not None:
            log.warning(
                "request failed",
                extra={"wr_module": key, "status": reply.status, "reason": reply.error},
            )
        REQUESTS.labels(key, str(reply.status)).inc()
        LATENCY.labels(key).observe(time.perf_counter() - started)
        reply.headers = [(k, v) for k, v in reply.headers if k.lower() not in HOP_BY_HOP]
        return reply

    async def _forward(
        self, request: IncomingRequest, key: str, path: str, deadline_secs: float
    ) -> Reply:
        method = request.method
        with request_span(self.tracing, key, method, path, request.header_map) as span:
            headers = [
                (k, v) for k, v in request.headers if k not in HOP_BY_HOP and k != "traceparent"
            ]
            if span.traceparent:
                headers.append(("traceparent", span.traceparent))
            reply = await self.pool.call(
                key, method, path, headers, request.body, deadline_secs, request.body_file
            )
            span.finish(reply.status, reply.error)
        return reply

    async def _engine_endpoint(self, request: IncomingRequest) -> Reply:
        path = request.path_qs.partition("?")[0]
        if path == wire.HEALTH_PATH:
            report = await self.health()
            body = json.dumps(report).encode()
            status = 200 if report.get("ok") else 503
            return Reply(status, [("content-type", "application/json; charset=utf-8")], body)
        if path == wire.METRICS_PATH:
            return Reply(200, [("content-type", CONTENT_TYPE_LATEST)], generate_latest(REGISTRY))
        return _text(
            404,
            f"no module selected: send {wire.MODULE_HEADER} and {wire.NAMESPACE_HEADER}, or a path "
            f"/{{namespace}}.{{module}}/..., got {path!r}",
        )


def _text(status: int, message: str) -> Reply:
    return Reply(status, [("content-type", "text/plain; charset=utf-8")], (message + "\n").encode())

"""The engine's HTTP front (aiohttp): `/__health`, `/metrics` and module requests."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from runtime.engine.metrics import LATENCY, REQUESTS
from runtime.engine.pool import Reply, WorkerPool
from runtime.engine.routing import select_module
from runtime.engine.tracing import request_span

log = logging.getLogger("wr-engine.front")

# Not passed to the guest, nor copied back from it: the front frames the messages itself.
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "upgrade",
    "proxy-connection",
    "te",
    "trailer",
}

HealthReport = Callable[[], Awaitable[dict[str, object]]]


class Front:
    """Routes each request: engine endpoints, or a module via the worker pool."""

    def __init__(
        self, pool: WorkerPool, timeouts: dict[str, float], health: HealthReport, tracing: bool
    ) -> None:
        self.pool = pool
        self.timeouts = timeouts
        self.health = health
        self.tracing = tracing

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        key, guest_path = select_module(request.headers, request.path_qs)
        if key is None:
            return await self._engine_endpoint(request)
        timeout = self.timeouts.get(key)
        if timeout is None:
            served = ", ".join(sorted(self.timeouts)) or "no modules"
            return _text(404, f"unknown module {key!r}: this engine serves {served}")
        started = time.perf_counter()
        reply = await self._forward(request, key, guest_path, timeout)
        if reply.error is not None:
            log.warning(
                "request failed",
                extra={"wr_module": key, "status": reply.status, "reason": reply.error},
            )
        REQUESTS.labels(key, str(reply.status)).inc()
        LATENCY.labels(key).observe(time.perf_counter() - started)
        response = web.Response(status=reply.status, body=reply.body)
        for k, v in reply.headers:
            if k.lower() not in _HOP_BY_HOP:
                response.headers.add(k, v)
        return response

    async def _forward(
        self, request: web.Request, key: str, path: str, deadline_secs: float
    ) -> Reply:
        body = await request.read()
        with request_span(self.tracing, key, request.method, path, request.headers) as span:
            headers = [
                (k.lower(), v)
                for k, v in request.headers.items()
                if k.lower() not in _HOP_BY_HOP and k.lower() != "traceparent"
            ]
            if span.traceparent:
                headers.append(("traceparent", span.traceparent))
            reply = await self.pool.call(key, request.method, path, headers, body, deadline_secs)
            span.finish(reply.status, reply.error)
        return reply

    async def _engine_endpoint(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/__health":
            report = await self.health()
            return web.json_response(report, status=200 if report.get("ok") else 503)
        if request.path == "/metrics":
            return web.Response(
                body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )
        return _text(
            404,
            "no module selected: send x-wr-module and x-wr-namespace, or a path "
            f"/{{namespace}}.{{module}}/..., got {request.path!r}",
        )


def make_app(
    pool: WorkerPool, timeouts: dict[str, float], health: HealthReport, tracing: bool = False
) -> web.Application:
    """timeouts maps each served `namespace.module` to its request deadline in seconds;
    tracing: open a span per module request (tracing was set up)."""
    front = Front(pool, timeouts, health, tracing)
    app = web.Application(client_max_size=1 << 40)  # no cap: bodies go to the guest whole
    app.router.add_route("*", "/{tail:.*}", front.dispatch)
    return app


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n")

"""Admin HTTP endpoints shared by the services: Prometheus `/metrics` and `/healthz`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from runtime.wire import ADMIN_HEALTH_PATH, METRICS_PATH

HealthCheck = Callable[[], Awaitable[dict[str, object]]]


def admin_app(health: HealthCheck, registry: CollectorRegistry = REGISTRY) -> web.Application:
    """An aiohttp app serving metrics from registry and health from the given check.

    The check returns a JSON-able dict; a false `"ok"` in it answers 503.
    """

    async def metrics(_: web.Request) -> web.Response:
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        report = await health()
        return web.json_response(report, status=200 if report.get("ok", True) else 503)

    app = web.Application()
    app.router.add_get(METRICS_PATH, metrics)
    app.router.add_get(ADMIN_HEALTH_PATH, healthz)
    return app


async def start_admin(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve app on host:port; the caller keeps the runner and awaits `runner.cleanup()`."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner

"""Background monitor: expires engines and modules whose heartbeats went stale (and revives
those that came back), and refreshes the gauges."""

from __future__ import annotations

import asyncio
import logging

from runtime.manager.metrics import ManagerMetrics
from runtime.manager.state.manager_state import ManagerState

log = logging.getLogger("runtime.manager.health")


def tick_interval(engine_timeout: float, module_timeout: float) -> float:
    """Check five times per (shortest) timeout: a stale route is out within 1.2 timeouts."""
    return min(max(min(engine_timeout, module_timeout) / 5, 0.05), 5.0)


class HealthMonitor:
    """Runs ManagerState.refresh_health periodically until stopped."""

    def __init__(self, state: ManagerState, metrics: ManagerMetrics) -> None:
        self._state = state
        self._metrics = metrics
        timeouts = state.timeouts
        self.interval = tick_interval(timeouts.engine_secs, timeouts.module_secs)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="health-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def tick(self) -> list[tuple[str, bool]]:
        flips = await self._state.refresh_health()
        self._metrics.count_flips(flips)
        for rule_id, healthy in flips:
            log.info("route health changed", extra={"rule_id": rule_id, "healthy": healthy})
        for engine_id in await self._state.forget_departed():
            log.info("engine forgotten after the retention", extra={"engine_id": engine_id})
        total, healthy_engines = await self._state.engine_counts()
        self._metrics.engines.set(total)
        self._metrics.engines_healthy.set(healthy_engines)
        self._metrics.routing_version.set(await self._state.routing_version())
        return flips

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                # A store hiccup must not end monitoring; the next tick retries.
                log.exception("health check failed")
            await asyncio.sleep(self.interval)

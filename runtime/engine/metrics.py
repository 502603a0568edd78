"""Prometheus metrics of the engine front."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from runtime.wire import HEALTH_PATH

REQUESTS = Counter(
    "wr_engine_requests_total", "Requests served per module and status", ["module", "status"]
)
LATENCY = Histogram(
    "wr_engine_request_seconds",
    "Time from request read to response ready, per module",
    ["module"],
    buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30),
)
WORKER_RESTARTS = Gauge("wr_engine_worker_restarts", "Workers restarted since start")
HEALTHY_MODULES = Gauge("wr_engine_healthy_modules", f"Modules whose last {HEALTH_PATH} passed")

"""Prometheus metrics of the proxy, with label children bound once and reused per request."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_CHILD_LIMIT = 10_000


class ProxyMetrics:
    """Requests by destination and status, latency by destination, breaker state by upstream."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._requests = Counter(
            "wr_proxy_requests",
            "Requests answered, by destination (namespace.module, egress host or '-') and status",
            ["destination", "status"],
            registry=registry,
        )
        self._latency = Histogram(
            "wr_proxy_request_duration_seconds",
            "Time from request headers to the end of the response, by destination",
            ["destination"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self._breaker = Gauge(
            "wr_proxy_circuit_breaker_state",
            "Circuit breaker state per upstream address: 0 closed, 1 open, 2 half-open",
            ["upstream"],
            registry=registry,
        )
        self.upstream_connects = Counter(
            "wr_proxy_upstream_connects",
            "New upstream connections opened (pool misses)",
            registry=registry,
        )
        self.retries = Counter(
            "wr_proxy_retries",
            "Requests retried on another connection or instance",
            registry=registry,
        )
        self._counters: dict[tuple[str, int], Counter] = {}
        self._histograms: dict[str, Histogram] = {}

    def observe(self, destination: str, status: int, seconds: float) -> None:
        """Count one finished request; children are looked up once and cached."""
        counter = self._counters.get((destination, status))
        if counter is None:
            if len(self._counters) > _CHILD_LIMIT:
                self._counters.clear()
            counter = self._counters[(destination, status)] = self._requests.labels(
                destination, str(status)
            )
        counter.inc()
        histogram = self._histograms.get(destination)
        if histogram is None:
            histogram = self._histograms[destination] = self._latency.labels(destination)
        histogram.observe(seconds)

    def breaker_state(self, upstream: str, state: int) -> None:
        self._breaker.labels(upstream).set(state)

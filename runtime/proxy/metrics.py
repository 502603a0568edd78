"""Prometheus metrics of the proxy. Per-request counts are plain ints, exported at scrape time."""

# prometheus_client's own Counter/Histogram take a lock and walk label dicts on every call; the
# data path runs on one event loop, so it keeps its counts in dicts and a collector turns them
# into metric families only when /metrics is read.

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_KEY_LIMIT = 10_000  # destinations x statuses kept before counts are folded into "-"


class _Latency:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0


class _RequestCollector(Collector):
    def __init__(self, metrics: ProxyMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "wr_proxy_requests",
            "Requests answered, by destination (namespace.module, egress:host or '-') and status",
            labels=["destination", "status"],
        )
        for (destination, status), count in sorted(self._metrics.counts.items()):
            requests.add_metric([destination, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "wr_proxy_request_duration_seconds",
            "Time from request headers to the end of the response, by destination",
            labels=["destination"],
        )
        for destination, hist in sorted(self._metrics.latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*BUCKETS, float("inf")), hist.counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            latency.add_metric([destination], buckets, hist.total)
        yield latency


class ProxyMetrics:
    """Requests by destination and status, latency by destination, breaker state by upstream."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.counts: dict[tuple[str, int], int] = {}
        self.latency: dict[str, _Latency] = {}
        registry.register(_RequestCollector(self))
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

    def observe(self, destination: str, status: int, seconds: float) -> None:
        """Count one finished request (a few dict and list operations, no locks)."""
        key = (destination, status)
        counts = self.counts
        try:
            counts[key] += 1
        except KeyError:
            if len(counts) >= _KEY_LIMIT:
                key = ("-", status)
            counts[key] = counts.get(key, 0) + 1
        hist = self.latency.get(destination)
        if hist is None:
            if len(self.latency) >= _KEY_LIMIT:
                destination = "-"
            hist = self.latency.setdefault(destination, _Latency())
        hist.counts[bisect_left(BUCKETS, seconds)] += 1
        hist.total += seconds

    def breaker_state(self, upstream: str, state: int) -> None:
        self._breaker.labels(upstream).set(state)

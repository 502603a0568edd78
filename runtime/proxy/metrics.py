"""Prometheus metrics of the proxy. Per-request counts are plain ints, exported at scrape time."""

# prometheus_client's own Counter/Histogram take a lock and walk label dicts on every call; the
# data path runs on one event loop, so it keeps its counts in one small object per destination
# (which the router's cached route plan hands to the request: no label lookup per request) and
# a collector turns them into metric families only when /metrics is read.

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from runtime.proxy.breaker import BreakerKey

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_KEY_LIMIT = 10_000  # destinations kept before further ones are counted as "-"
_STATUS_LIMIT = 100  # distinct statuses kept per destination before the rest count as 0


class DestinationStats:
    """Counts by status and the latency histogram of one destination label."""

    __slots__ = ("buckets", "by_status", "total")

    def __init__(self) -> None:
        self.by_status: dict[int, int] = {}
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, status: int, seconds: float) -> None:
        """Count one finished request: a few dict and list operations, no locks."""
        by_status = self.by_status
        try:
            by_status[status] += 1
        except KeyError:  # only a misbehaving upstream invents more statuses than the limit
            key = status if len(by_status) < _STATUS_LIMIT else 0
            by_status[key] = by_status.get(key, 0) + 1
        self.buckets[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds


class _RequestCollector(Collector):
    def __init__(self, metrics: ProxyMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        requests = CounterMetricFamily(
            "wr_proxy_requests",
            "Requests answered, by destination (namespace.module, egress:host or '-') and status",
            labels=["destination", "status"],
        )
        destinations = sorted(self._metrics.destinations.items())
        for destination, stats in destinations:
            for status, count in sorted(stats.by_status.items()):
                requests.add_metric([destination, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "wr_proxy_request_duration_seconds",
            "Time from request headers to the end of the response, by destination",
            labels=["destination"],
        )
        for destination, stats in destinations:
            if not stats.by_status:
                continue  # planned but not finished yet: no histogram to show
            cumulative, buckets = 0, []
            for bound, count in zip((*BUCKETS, float("inf")), stats.buckets, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            latency.add_metric([destination], buckets, stats.total)
        yield latency


class ProxyMetrics:
    """Requests by destination and status, latency by destination, breaker state by
    destination, version and upstream."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.destinations: dict[str, DestinationStats] = {}
        registry.register(_RequestCollector(self))
        self._breaker = Gauge(
            "wr_proxy_circuit_breaker_state",
            "Circuit breaker state per module version (destination, version; egress: no "
            "version) and upstream address: 0 closed, 1 open, 2 half-open",
            ["destination", "version", "upstream"],
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

    def stats(self, destination: str) -> DestinationStats:
        """The counters of one destination label (made on first use)."""
        stats = self.destinations.get(destination)
        if stats is None:
            if len(self.destinations) >= _KEY_LIMIT:
                destination = "-"
                stats = self.destinations.get(destination)
            if stats is None:
                stats = self.destinations[destination] = DestinationStats()
        return stats

    def observe(self, destination: str, status: int, seconds: float) -> None:
        """Count one finished request of `destination` (the hot path keeps its stats instead)."""
        self.stats(destination).observe(status, seconds)

    def breaker_state(self, key: BreakerKey, state: int) -> None:
        self._breaker.labels(*key).set(state)

    def breaker_gone(self, key: BreakerKey) -> None:
        """The breaker's rule left the routing table: its series goes too."""
        self._breaker.remove(*key)

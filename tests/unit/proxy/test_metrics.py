"""Per-destination request counters and their Prometheus exposition."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from runtime.proxy import metrics as metrics_module
from runtime.proxy.metrics import ProxyMetrics


def _sample(registry: CollectorRegistry, line_start: str) -> float:
    text = generate_latest(registry).decode()
    [line] = [line for line in text.splitlines() if line.startswith(line_start + " ")]
    return float(line.rsplit(" ", 1)[1])


def test_counts_by_status_and_latency_buckets() -> None:
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry)
    stats = metrics.stats("ns.mod")
    assert metrics.stats("ns.mod") is stats  # the route plan keeps it: one object per label
    stats.observe(200, 0.0004)
    stats.observe(200, 0.003)
    metrics.observe("ns.mod", 503, 0.2)
    requests = 'wr_proxy_requests_total{destination="ns.mod",status="%d"}'
    assert _sample(registry, requests % 200) == 2
    assert _sample(registry, requests % 503) == 1
    bucket = 'wr_proxy_request_duration_seconds_bucket{destination="ns.mod",le="%s"}'
    assert _sample(registry, bucket % "0.0005") == 1
    assert _sample(registry, bucket % "0.005") == 2
    assert _sample(registry, bucket % "+Inf") == 3
    total = _sample(registry, 'wr_proxy_request_duration_seconds_sum{destination="ns.mod"}')
    assert abs(total - 0.2034) < 1e-9


def test_unused_destination_has_no_histogram_and_labels_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics_module, "_KEY_LIMIT", 2)
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry)
    metrics.stats("planned.only")
    metrics.observe("a.b", 200, 0.01)
    metrics.observe("c.d", 200, 0.01)  # over the limit: counted as "-"
    text = generate_latest(registry).decode()
    assert 'destination="planned.only"' not in text
    assert 'wr_proxy_requests_total{destination="-",status="200"} 1.0' in text

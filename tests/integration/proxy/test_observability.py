"""Prometheus /metrics and one OpenTelemetry span per hop with W3C traceparent propagation."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from tests.infra.otel import SpanCollector
from tests.integration.proxy.support import (
    Engine,
    FakeManager,
    ProxyProcess,
    metric_sample,
    rule,
)

DEST = "http://example.echo/pkg.Echo/Say"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def test_metrics_count_requests_latency_and_breakers(
    manager: FakeManager, fresh_engines: list[Engine], start_proxy: Callable[..., ProxyProcess]
) -> None:
    proxy = start_proxy()
    proxy.wait_table(manager.set_rules([rule(fresh_engines[0])]))
    for _ in range(3):
        assert proxy.request(DEST)[0] == 200
    assert proxy.request("http://example.missing/x")[0] == 404
    metrics = proxy.metrics()

    def sample(name: str, **labels: str) -> float | None:
        return metric_sample(metrics, name, **labels)

    requests, latency = "wr_proxy_requests_total", "wr_proxy_request_duration_seconds"
    assert sample(requests, destination="example.echo", status="200") == 3
    assert sample(requests, destination="example.missing", status="404") == 1
    assert sample(f"{latency}_count", destination="example.echo") == 3
    assert sample(f"{latency}_bucket", destination="example.echo", le="+Inf") == 3
    assert sample(f"{latency}_bucket", destination="example.echo", le="10.0") == 3
    breaker = "wr_proxy_circuit_breaker_state"
    assert sample(breaker, upstream=fresh_engines[0].address) == 0


def test_span_per_hop_and_traceparent_propagation(
    manager: FakeManager,
    fresh_engines: list[Engine],
    start_proxy: Callable[..., ProxyProcess],
    span_collector: SpanCollector,
) -> None:
    span_collector.clear()
    proxy = start_proxy(
        extra_toml=f'[tracing]\nendpoint = "{span_collector.endpoint}"\nsample_ratio = 0.0'
    )
    proxy.wait_table(manager.set_rules([rule(fresh_engines[0])]))

    # A sampled caller: the proxy's span is its child and the engine sees the proxy's span.
    status, _, body = proxy.request(
        DEST,
        headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "x-wr-source": "caller"},
    )
    assert status == 200
    span = span_collector.wait_for_span("wr-proxy example.echo")
    assert span.service_name == "wr-proxy"
    assert span.resource.get("wr.node"), "the node is named once per batch, as a resource"
    assert span.trace_id == TRACE_ID and span.parent_span_id == PARENT_ID
    assert span.attributes["wr.source"] == "caller"
    assert span.attributes["wr.destination"] == DEST
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["wr.version"] == "1.0.0"
    sent = json.loads(body)["headers"]["traceparent"]
    assert sent == f"00-{TRACE_ID}-{span.span_id}-01"

    # An unsampled caller: its traceparent passes through, and no span is recorded.
    unsampled = f"00-{TRACE_ID[::-1]}-{PARENT_ID}-00"
    _, _, body = proxy.request(DEST, headers={"traceparent": unsampled})
    assert json.loads(body)["headers"]["traceparent"] == unsampled

    # No trace and ratio 0: a not-sampled traceparent is started so later hops agree.
    _, _, body = proxy.request(DEST)
    started = json.loads(body)["headers"]["traceparent"]
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-00", started)
    # A last sampled request marks the end: nothing else may have been exported before it.
    barrier = "0af7651916cd43dd8448eb211c80319c"
    proxy.request(DEST, headers={"traceparent": f"00-{barrier}-{PARENT_ID}-01"})
    span_collector.wait_for(lambda spans: any(s.trace_id == barrier for s in spans), 5)
    assert [s.trace_id for s in span_collector.spans("wr-proxy")] == [TRACE_ID, barrier]

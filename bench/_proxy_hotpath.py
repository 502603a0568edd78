"""Python-side cost of one proxied request, with in-memory transports (no sockets, no kernel)."""

# The wrk numbers of bench/proxy.py include the kernel and move with the machine's load; this
# isolates what the proxy's own code costs per request, with tracing on and off.

from __future__ import annotations

import time
from typing import Any

import uvloop
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from prometheus_client import CollectorRegistry

from runtime.api import wruntime_pb2 as pb
from runtime.proxy.breaker import BreakerRegistry
from runtime.proxy.client import INTERNAL, ClientConnection
from runtime.proxy.egress import EgressPolicy
from runtime.proxy.metrics import ProxyMetrics
from runtime.proxy.router import Router
from runtime.proxy.routing import RoutingIndex
from runtime.proxy.tracing import HopTracer
from runtime.proxy.upstream import UpstreamConnection, UpstreamPool

OWN = "https://127.0.0.1:9443"
REQUEST = (
    b"GET /pkg.Echo/Say HTTP/1.1\r\nHost: 127.0.0.1:9001\r\n"
    b"x-wr-destination: http://bench.echo/pkg.Echo/Say\r\nx-wr-version: ^1.0\r\n\r\n"
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 24\r\n"
    b"Date: Wed, 25 Nov 2026 17:00:00 GMT\r\nServer: Python/3.11 aiohttp/3.14.5\r\n\r\n"
    b"hello from the upstream\n"
)


class _DropSpans(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _provider() -> TracerProvider:
    """An SDK provider as the proxy runs it, exporting (in batches) to nowhere."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_DropSpans(), schedule_delay_millis=200))
    return provider


class _MemoryTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, data: Any) -> None:
        self.written.extend(data)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def close(self) -> None: ...


def cost_per_request(tracing: bool, requests: int = 20_000, rounds: int = 7) -> float:
    """Best-of-rounds microseconds of Python work per request through the real data path."""
    loop = uvloop.new_event_loop()
    provider = _provider() if tracing else None
    try:
        metrics = ProxyMetrics(CollectorRegistry())
        breakers = BreakerRegistry(5, 30, metrics.breaker_state)
        pool = UpstreamPool(None, 10)
        router = Router(
            node_id="bench",
            own_peer_address=OWN,
            request_timeout=30,
            egress=EgressPolicy([]),
            ingress=None,
            pool=pool,
            breakers=breakers,
            metrics=metrics,
            tracer=HopTracer(tracing, 0.01, provider),
            loop=loop,
        )
        rules = [
            pb.RoutingRule(
                rule_id=f"r{i}",
                destination_namespace="bench",
                destination_module="echo",
                destination_version=version,
                engine_address="http://127.0.0.1:9100",
                healthy=True,
            )
            for i, version in enumerate(("1.0.0", "1.0.0", "0.9.0"))
        ]
        router.index = RoutingIndex(pb.RoutingTable(rules=rules, version=1), OWN, breakers)
        upstream = UpstreamConnection(pool, ("127.0.0.1", 9100, 0))
        upstream_side = _MemoryTransport()
        upstream.connection_made(upstream_side)  # type: ignore[arg-type]
        pool.release(upstream)
        client = ClientConnection(router, INTERNAL)
        client_side = _MemoryTransport()
        client.connection_made(client_side)  # type: ignore[arg-type]

        def run(count: int) -> None:
            for _ in range(count):
                client.data_received(REQUEST)
                upstream.data_received(RESPONSE)
            if client_side.written[-1] != RESPONSE:
                raise AssertionError("the response was not relayed unchanged")
            client_side.written.clear()
            upstream_side.written.clear()

        run(1000)
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            run(requests)
            best = min(best, time.perf_counter() - started)
        return best / requests * 1e6
    finally:
        loop.close()
        if provider is not None:
            provider.shutdown()

"""A local OTLP/gRPC trace receiver, so tests can see the spans real services export."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

HOST = "127.0.0.1"


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, decoded: ids are lower-case hex, parent_span_id is None at a root."""

    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    service_name: str | None
    kind: int
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    events: tuple[tuple[str, dict[str, Any]], ...] = ()  # (name, attributes) in order
    status: tuple[int, str] = (0, "")  # (code: 0 unset, 1 ok, 2 error; message)


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(item) for item in v.array_value.values]
    if which == "kvlist_value":
        return _attributes(v.kvlist_value.values)
    return getattr(v, which)


def _attributes(pairs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kv: KeyValue
    for kv in pairs:
        out[kv.key] = _value(kv.value)
    return out


def decode(request: trace_service_pb2.ExportTraceServiceRequest) -> list[ReceivedSpan]:
    """Flatten an OTLP export request into spans carrying their resource's attributes."""
    spans = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for s in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        name=s.name,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=s.parent_span_id.hex() or None,
                        service_name=resource.get("service.name"),
                        kind=s.kind,
                        attributes=_attributes(s.attributes),
                        resource=resource,
                        events=tuple((e.name, _attributes(e.attributes)) for e in s.events),
                        status=(s.status.code, s.status.message),
                    )
                )
    return spans


class SpanCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span exported to `endpoint` until clear(); safe across gRPC threads."""

    def __init__(self) -> None:
        self.endpoint = ""
        self._spans: list[ReceivedSpan] = []
        self._changed = threading.Condition()

    def Export(  # the name is fixed by the generated servicer
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        received = decode(request)
        with self._changed:
            self._spans.extend(received)
            self._changed.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self, service_name: str | None = None) -> list[ReceivedSpan]:
        """Spans received so far (optionally only those of one service), in arrival order."""
        with self._changed:
            return [s for s in self._spans if service_name in (None, s.service_name)]

    def clear(self) -> None:
        with self._changed:
            self._spans.clear()

    def wait_for(
        self,
        predicate: Callable[[list[ReceivedSpan]], bool],
        deadline_s: float = 10.0,
        what: str = "the expected spans",
    ) -> list[ReceivedSpan]:
        """Block until predicate(all spans so far) is true and return the spans; on timeout
        raise TimeoutError naming `what` and listing what did arrive."""
        deadline = time.monotonic() + deadline_s
        with self._changed:
            while not predicate(list(self._spans)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = [(s.service_name, s.name) for s in self._spans]
                    raise TimeoutError(
                        f"timed out after {deadline_s:g}s waiting for {what}; received {got}"
                    )
                self._changed.wait(remaining)
            return list(self._spans)

    def wait_for_span(self, name: str, deadline_s: float = 10.0) -> ReceivedSpan:
        """The first span called `name`, waiting for it to arrive."""
        spans = self.wait_for(
            lambda got: any(s.name == name for s in got), deadline_s, f"a span named {name!r}"
        )
        return next(s for s in spans if s.name == name)


@pytest.fixture(scope="session")
def span_collector() -> Iterator[SpanCollector]:
    """An OTLP/gRPC receiver on a free loopback port for the session; point services at
    `span_collector.endpoint` (e.g. OTEL_EXPORTER_OTLP_ENDPOINT) and filter by service name
    or clear() between tests."""
    collector = SpanCollector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port(f"{HOST}:0")  # the kernel picks the port: no race
    if port == 0:
        raise RuntimeError(f"OTLP receiver could not bind {HOST}")
    server.start()
    collector.endpoint = f"http://{HOST}:{port}"
    try:
        yield collector
    finally:
        server.stop(grace=None).wait(5)

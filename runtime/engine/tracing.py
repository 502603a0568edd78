"""Engine spans: one SERVER span per module request, parent of the guest's outbound calls.

Costs nothing unless tracing is set up (`otlp_endpoint` in engine.toml, or the standard
OTEL_EXPORTER_OTLP_ENDPOINT variable).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind

_tracer = trace.get_tracer("wruntime.engine")


class RequestSpan:
    """Wraps the span of one request; `traceparent` is what the worker's outbound calls continue."""

    def __init__(self, span: Span | None, traceparent: str | None) -> None:
        self.span = span
        self.traceparent = traceparent

    def finish(self, status: int, error: str | None) -> None:
        if self.span is None:
            return
        self.span.set_attribute("http.response.status_code", status)
        if status >= 500:
            self.span.set_status(trace.Status(trace.StatusCode.ERROR, error or str(status)))


@contextmanager
def request_span(
    enabled: bool, module: str, method: str, path: str, headers: Mapping[str, str]
) -> Iterator[RequestSpan]:
    """Open the request's span (child of the incoming traceparent) when tracing is enabled."""
    incoming = headers.get("traceparent")
    if not enabled:
        yield RequestSpan(None, incoming)
        return
    namespace, _, name = module.partition(".")
    with _tracer.start_as_current_span(
        f"{method} {module}",
        context=propagate.extract(headers),
        kind=SpanKind.SERVER,
        attributes={
            "wr.module": name,
            "wr.namespace": namespace,
            "url.path": path,
            "http.request.method": method,
        },
    ) as span:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        yield RequestSpan(span, carrier.get("traceparent", incoming))

"""Host side of the tracing capability (`wruntime:tracing/span`): guest spans join the trace.

A guest span's parent is the innermost span of the same request the guest still holds open,
else the engine's span for the request (the worker gets its context as the request's
traceparent); `start-root` begins a fresh trace. While a guest span is open, the guest's
outbound calls carry its context, so the callee's spans nest under it.

Limits: at most `max_spans` live spans per request (default 1024, engine.toml
`[limits] max_spans`); one more traps the guest and the request fails with a 500 naming the
limit, the worker goes on. Names, keys and text values are cut at MAX_TEXT characters and a
call takes at most MAX_ITEMS attributes (the SDK's span limits bound the rest). Spans the
guest leaves open are ended when the request ends, marked `wr.span.unclosed`. Spans are
exported only when tracing is set up in the worker (engine.toml `otlp_endpoint`); otherwise
they are OpenTelemetry's no-op spans.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from wasmtime import WasmtimeError
from wasmtime.component import ResourceType

from runtime.engine.guest_run import GuestRun
from runtime.engine.host_abi import (
    add_direct_func,
    read_pairs,
    read_str,
    read_variant_payload,
    resource_rep,
    set_own_resource,
)
from runtime.telemetry import setup_tracing, shutdown_tracing

INTERFACE = "wruntime:tracing/span@0.2.0"
SPAN_RESOURCE = 1  # our id for the host resource type `active-span`
DEFAULT_MAX_SPANS = 1024
MAX_TEXT = 4096
MAX_ITEMS = 128

_propagator = TraceContextTextMapPropagator()
_tracer = trace.get_tracer("wruntime.guest")
_reps = itertools.count(1)


class TooManySpans(WasmtimeError):
    """Raised into the guest (a trap) when it opens more live spans than allowed."""


class RequestSpans:
    """The guest spans of one request, by resource rep, in the order they were opened."""

    def __init__(self, run: GuestRun) -> None:
        self.run = run
        self.live: dict[int, Span] = {}
        self.base: str | None = None  # the request's traceparent, saved at the first span
        self._base_ctx: otel_context.Context | None = None

    def parent(self) -> otel_context.Context:
        if self.live:
            return trace.set_span_in_context(next(reversed(self.live.values())))
        if self._base_ctx is None:  # parsed once per request
            self._base_ctx = _propagator.extract({"traceparent": self.base or ""})
        return self._base_ctx

    def point_outbound(self) -> None:
        """Outbound calls continue the innermost open span, else the request's context."""
        if self.live:
            ctx = next(reversed(self.live.values())).get_span_context()
            if ctx.is_valid:
                flags = int(ctx.trace_flags)
                self.run.call.traceparent = f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{flags:02x}"
                return
        self.run.call.traceparent = self.base


def _text(value: str) -> str:
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT]


def _attributes(attrs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in attrs:
        out[_text(key)] = _text(value) if isinstance(value, str) else value
    return out


def _trapping(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn any exception into WasmtimeError: the guest traps, and wasmtime-py never parks it
    in its module-global "last exception" (unsafe with several threads in wasm)."""

    def call(*args: Any) -> Any:
        try:
            return func(*args)
        except WasmtimeError:
            raise
        except Exception as exc:
            raise WasmtimeError(f"tracing: {type(exc).__name__}: {exc}") from None

    return call


class TracingBinding:
    """Links `wruntime:tracing/span` into a worker's Linker; per-request state per thread."""

    name = "tracing"

    @staticmethod
    def settings(node_config: Mapping[str, Any]) -> dict[str, Any]:
        """What a worker needs from engine.toml (as a dict): where to export and the limit."""
        limits = node_config.get("limits") or {}
        return {
            "otlp_endpoint": node_config.get("otlp_endpoint"),
            "sample_ratio": node_config.get("trace_sample_ratio", 1.0),
            "max_spans": limits.get("max_spans", DEFAULT_MAX_SPANS),
        }

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.max_spans = int(settings.get("max_spans", DEFAULT_MAX_SPANS))
        self._exporting = setup_tracing(
            "wr-engine", settings.get("otlp_endpoint"), float(settings.get("sample_ratio", 1.0))
        )
        self._local = threading.local()
        self._type = ResourceType.host(SPAN_RESOURCE)

    # -- lifecycle (called by host.py around every request, on the request's thread) ----------

    def link(self, root: Any) -> None:
        with root.add_instance(INTERFACE) as li:
            li.add_resource("active-span", self._type, _trapping(self._drop))
            add_direct_func(li, "start", self._start)
            add_direct_func(li, "start-root", self._start_root)
            add_direct_func(li, "[method]active-span.set-attribute", self._set_attribute)
            add_direct_func(li, "[method]active-span.record-event", self._record_event)
            add_direct_func(li, "[method]active-span.set-error", self._set_error)

    def begin(self, run: GuestRun) -> None:
        self._local.spans = RequestSpans(run)

    def end(self, run: GuestRun) -> None:
        """End what the guest left open (its instance is gone: no drop will come)."""
        spans: RequestSpans | None = getattr(self._local, "spans", None)
        self._local.spans = None
        if spans is None:
            return
        for span in spans.live.values():
            span.set_attribute("wr.span.unclosed", True)
            span.end()
        spans.live.clear()

    def close(self) -> None:
        if self._exporting:
            shutdown_tracing()  # flushes what the batch processor still holds

    # -- host functions: a wrong handle or value from the guest traps only that guest ---------

    def _spans(self) -> RequestSpans:
        spans: RequestSpans | None = getattr(self._local, "spans", None)
        if spans is None:
            raise WasmtimeError("tracing used outside a request")
        return spans

    def _open(self, context: Any, args: Any, results: Any, root: bool) -> None:
        """start / start-root: (name, attrs) -> own<active-span>"""
        spans = self._spans()
        if len(spans.live) >= self.max_spans:
            message = (
                f"module {spans.run.spec.key}: over {self.max_spans} live spans in one request "
                "(close spans with `with tracing.span(...)`; the limit is [limits] max_spans)"
            )
            spans.run.stopped = (500, message)
            raise TooManySpans(message)
        name, attrs = read_str(args[0]), read_pairs(args[1], MAX_ITEMS)
        if spans.base is None:
            spans.base = spans.run.call.trace_parent()
        parent = otel_context.Context() if root else spans.parent()
        span = _tracer.start_span(
            _text(name), context=parent, kind=SpanKind.INTERNAL, attributes=_attributes(attrs)
        )
        rep = next(_reps)
        try:
            set_own_resource(context, results[0], rep, SPAN_RESOURCE)
        except Exception:
            span.end()
            raise
        spans.live[rep] = span
        spans.point_outbound()

    def _start(self, context: Any, args: Any, _nargs: int, results: Any) -> None:
        self._open(context, args, results, root=False)

    def _start_root(self, context: Any, args: Any, _nargs: int, results: Any) -> None:
        self._open(context, args, results, root=True)

    def _span(self, context: Any, handle: Any) -> Span:
        span = self._spans().live.get(resource_rep(context, handle))
        if span is None:  # a rep this request never handed out, or one already ended
            raise WasmtimeError("unknown span")
        return span

    def _set_attribute(self, context: Any, args: Any, _nargs: int, _results: Any) -> None:
        value = read_variant_payload(args[2])
        value = _text(value) if isinstance(value, str) else value
        self._span(context, args[0]).set_attribute(_text(read_str(args[1])), value)

    def _record_event(self, context: Any, args: Any, _nargs: int, _results: Any) -> None:
        attrs = _attributes(read_pairs(args[2], MAX_ITEMS))
        self._span(context, args[0]).add_event(_text(read_str(args[1])), attrs)

    def _set_error(self, context: Any, args: Any, _nargs: int, _results: Any) -> None:
        message = _text(read_str(args[1]))
        self._span(context, args[0]).set_status(Status(StatusCode.ERROR, message))

    def _drop(self, _store: Any, rep: int) -> None:
        spans: RequestSpans | None = getattr(self._local, "spans", None)
        if spans is None:
            return
        span = spans.live.pop(rep, None)
        if span is not None:
            span.end()
            spans.point_outbound()

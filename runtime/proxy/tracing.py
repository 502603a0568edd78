"""One OpenTelemetry span per proxy hop, with W3C traceparent propagation kept cheap."""

# The sampling decision for requests that arrive without a trace is taken here (one random()
# call) rather than by the SDK, so unsampled requests never build SDK objects; the process's
# provider is therefore set up with ratio 1.0 and follows the parent's sampled flag.

from __future__ import annotations

import random
from binascii import b2a_hex
from collections.abc import Callable

from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)

_HEX = frozenset(b"0123456789abcdef")
_getrandbits = random.getrandbits
_UNSAMPLED = b"traceparent: 00-%b-00\r\n"


def _parse(value: bytes) -> tuple[int, int, int] | None:
    """(trace_id, span_id, flags) of a version-00 traceparent, None when malformed."""
    if len(value) != 55 or value[2:3] != b"-" or value[35:36] != b"-" or value[52:53] != b"-":
        return None
    if value[:2] != b"00" or not _HEX.issuperset(value[3:35] + value[36:52] + value[53:]):
        return None
    trace_id, span_id = int(value[3:35], 16), int(value[36:52], 16)
    if trace_id == 0 or span_id == 0:
        return None
    return trace_id, span_id, int(value[53:55], 16)


def _header(trace_id: int, span_id: int, sampled: bool) -> bytes:
    return b"traceparent: 00-%032x-%016x-%s\r\n" % (trace_id, span_id, b"01" if sampled else b"00")


class HopTracer:
    """Starts hop spans and says which traceparent header to send upstream."""

    def __init__(
        self, enabled: bool, sample_ratio: float, provider: trace.TracerProvider | None = None
    ) -> None:
        self.enabled = enabled
        self._ratio = sample_ratio
        self._tracer = (provider or trace.get_tracer_provider()).get_tracer("wruntime.proxy")

    def begin(
        self, incoming: bytes | None, describe: Callable[[], tuple[str, dict[str, str]]]
    ) -> tuple[Span | None, bytes]:
        """Return the span to end later (None when not sampled) and the header line to send.

        `describe` gives the span's name and attributes; it is only called for sampled
        requests, so unsampled ones build nothing.
        """
        parsed = _parse(incoming) if incoming is not None else None
        if parsed is not None:
            trace_id, span_id, flags = parsed
            if not flags & 1:
                return None, b"traceparent: " + incoming + b"\r\n"  # type: ignore[operator]
            parent = NonRecordingSpan(
                SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
            )
            context = trace.set_span_in_context(parent)
        elif random.random() < self._ratio:
            context = None
        else:  # not sampled: start a trace anyway so every later hop takes the same decision
            # 24 random bytes as "<32 hex>-<16 hex>" (trace id, span id) in one C call: about
            # half the cost of formatting a 192-bit integer.
            ids = _getrandbits(192).to_bytes(24, "little")  # what random.randbytes does
            return None, _UNSAMPLED % b2a_hex(ids, b"-", -16)
        name, attributes = describe()
        span = self._tracer.start_span(
            name, context=context, kind=SpanKind.SERVER, attributes=attributes
        )
        ctx = span.get_span_context()
        return span, _header(ctx.trace_id, ctx.span_id, ctx.trace_flags.sampled)

    @staticmethod
    def end(span: Span, status: int, upstream: str, version: str) -> None:
        span.set_attribute("http.response.status_code", status)
        if upstream:
            span.set_attribute("wr.upstream", upstream)
        if version:
            span.set_attribute("wr.version", version)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
        span.end()

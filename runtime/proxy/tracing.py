"""One OpenTelemetry span per proxy hop, with W3C traceparent propagation kept cheap."""

# The sampling decision for requests that arrive without a trace is taken here rather than by
# the SDK, so unsampled requests never build SDK objects; the process's provider is therefore
# set up with ratio 1.0 and follows the parent's sampled flag. Unsampled requests are the
# common case (default ratio 0.01) and cost a counter decrement and a list pop: the gap to the
# next sampled request is drawn once per sampled request, and the random ids of unsampled
# traceparents are made in blocks.

from __future__ import annotations

import math
import os
import random
import sys
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
_BLOCK = 256  # unsampled traceparent lines made per refill
_NEVER = sys.maxsize


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


def unsampled_lines(count: int) -> list[bytes]:
    """`count` "traceparent: 00-<trace id>-<parent id>-00" lines, each with its own trace id.

    The lines of one block share a random parent id: no span of an unsampled trace is ever
    recorded, so that id names nothing; the trace id is what keeps the requests apart.
    """
    # Built with a handful of C-level calls for the whole block and no Python work per line:
    # hex with a separator after each trace id, each separator becomes the end of one line, a
    # split mark and the start of the next, and one split (a memchr scan) cuts the lines.
    raw = os.urandom(16 * count + 8)  # no big-integer round trip as with random.getrandbits
    end = b"-" + b2a_hex(raw[:8]) + b"-00\r\n"
    ids = b2a_hex(raw[8:], b"|", 16).replace(b"|", end + b"|traceparent: 00-")
    return b"".join((b"traceparent: 00-", ids, end)).split(b"|")


class RootSampler:
    """Bernoulli(ratio) sampling decisions drawn as geometric gaps.

    The number of unsampled requests before the next sampled one is geometric, so drawing it
    once per sampled request gives the same distribution as a random draw per request. The
    user counts `gap` down by one per request and samples when it goes below zero (then draws
    the next gap).
    """

    __slots__ = ("_log_miss", "_ratio", "gap")

    def __init__(self, ratio: float) -> None:
        self._ratio = ratio
        self._log_miss = math.log1p(-ratio) if 0.0 < ratio < 1.0 else 0.0
        self.gap = self.draw()

    def draw(self) -> int:
        """Unsampled requests to let pass before the next sampled one."""
        if self._ratio >= 1.0:
            return 0
        if self._ratio <= 0.0:
            return _NEVER
        # 1 - random() is in (0, 1]: the logarithm is defined.
        return min(_NEVER, int(math.log(1.0 - random.random()) / self._log_miss))


class HopTracer:
    """Starts hop spans and says which traceparent header to send upstream."""

    def __init__(
        self, enabled: bool, sample_ratio: float, provider: trace.TracerProvider | None = None
    ) -> None:
        self.enabled = enabled
        self._sampler = RootSampler(sample_ratio)
        self._lines: list[bytes] = []
        self._tracer = (provider or trace.get_tracer_provider()).get_tracer("wruntime.proxy")

    def begin(
        self, incoming: bytes | None, describe: Callable[[], tuple[str, dict[str, str]]]
    ) -> tuple[Span | None, bytes]:
        """Return the span to end later (None when not sampled) and the header line to send.

        `describe` gives the span's name and attributes; it is only called for sampled
        requests, so unsampled ones build nothing.
        """
        parsed = _parse(incoming) if incoming is not None else None
        if parsed is None:  # no usable parent: this hop takes the sampling decision
            sampler = self._sampler
            sampler.gap -= 1
            if sampler.gap >= 0:  # not sampled (the usual case): start a trace anyway, so
                lines = self._lines  # every later hop takes the same decision
                if not lines:
                    lines = self._lines = unsampled_lines(_BLOCK)
                return None, lines.pop()
            sampler.gap = sampler.draw()
            context = None
        else:
            trace_id, span_id, flags = parsed
            if not flags & 1:
                return None, b"traceparent: " + incoming + b"\r\n"  # type: ignore[operator]
            parent = NonRecordingSpan(
                SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))
            )
            context = trace.set_span_in_context(parent)
        name, attributes = describe()
        span = self._tracer.start_span(
            name, context=context, kind=SpanKind.SERVER, attributes=attributes
        )
        ctx = span.get_span_context()
        return span, _header(ctx.trace_id, ctx.span_id, ctx.trace_flags.sampled)

    @staticmethod
    def end(span: Span, status: int, upstream: str, version: str) -> None:
        # One set_attributes call: the SDK takes a lock and checks the span per call.
        attributes: dict[str, str | int] = {"http.response.status_code": status}
        if upstream:
            attributes["wr.upstream"] = upstream
        if version:
            attributes["wr.version"] = version
        span.set_attributes(attributes)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
        span.end()

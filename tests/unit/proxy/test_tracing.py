"""Hop spans: sampling decisions and the traceparent sent upstream."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from runtime.proxy.tracing import HopTracer, RootSampler, unsampled_lines

TRACE = b"4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = b"00f067aa0ba902b7"


_MEMORY = InMemorySpanExporter()
_PROVIDER = TracerProvider()  # not installed globally: other suites may own the global one
_PROVIDER.add_span_processor(SimpleSpanProcessor(_MEMORY))


def _tracer(ratio: float) -> HopTracer:
    return HopTracer(True, ratio, _PROVIDER)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    _MEMORY.clear()
    yield _MEMORY


def test_sampled_parent_gets_a_child_span(exporter: InMemorySpanExporter) -> None:
    tracer = _tracer(0.0)
    span, header = tracer.begin(
        b"00-%s-%s-01" % (TRACE, PARENT), lambda: ("hop", {"wr.source": "a"})
    )
    assert span is not None
    tracer.end(span, 503, "http://e:1", "1.0.0")
    [finished] = exporter.get_finished_spans()
    assert finished.parent is not None and finished.parent.span_id == int(PARENT, 16)
    assert finished.context.trace_id == int(TRACE, 16)
    assert (
        finished.attributes is not None and finished.attributes["http.response.status_code"] == 503
    )
    assert header == b"traceparent: 00-%s-%016x-01\r\n" % (TRACE, finished.context.span_id)


def test_unsampled_parent_passes_through(exporter: InMemorySpanExporter) -> None:
    incoming = b"00-%s-%s-00" % (TRACE, PARENT)
    span, header = _tracer(1.0).begin(incoming, lambda: ("hop", {}))
    assert span is None and header == b"traceparent: " + incoming + b"\r\n"
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("bad", [b"garbage", b"00-" + b"0" * 32 + b"-" + PARENT + b"-01"])
def test_malformed_parent_is_replaced(exporter: InMemorySpanExporter, bad: bytes) -> None:
    span, header = _tracer(0.0).begin(bad, lambda: ("hop", {}))
    assert span is None
    assert header.startswith(b"traceparent: 00-") and header.endswith(b"-00\r\n")
    assert bad not in header


def test_root_sampling_ratio(exporter: InMemorySpanExporter) -> None:
    always, never = _tracer(1.0), _tracer(0.0)
    span, header = always.begin(None, lambda: ("hop", {}))
    assert span is not None and header.endswith(b"-01\r\n")
    span.end()
    assert never.begin(None, lambda: ("hop", {}))[0] is None


def test_unsampled_lines_are_valid_and_distinct() -> None:
    lines = unsampled_lines(512)
    assert len(lines) == 512
    pattern = re.compile(rb"traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-00\r\n")
    matches = [pattern.fullmatch(line) for line in lines]
    assert all(matches), [line for line, m in zip(lines, matches, strict=True) if not m][:3]
    trace_ids = {m.group(1) for m in matches if m}
    assert len(trace_ids) == 512 and b"0" * 32 not in trace_ids
    assert unsampled_lines(1) != unsampled_lines(1)


def test_unsampled_roots_get_fresh_trace_ids(exporter: InMemorySpanExporter) -> None:
    tracer = _tracer(0.0)
    headers = [tracer.begin(None, lambda: ("hop", {}))[1] for _ in range(600)]  # > one block
    assert len(set(headers)) == 600
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize("ratio", [0.01, 0.2])
def test_root_sampler_keeps_the_ratio(ratio: float) -> None:
    random.seed(7)
    sampler = RootSampler(ratio)
    draws = 20_000
    sampled = 0
    for _ in range(draws):
        sampler.gap -= 1
        if sampler.gap < 0:
            sampled += 1
            sampler.gap = sampler.draw()
    expected = draws * ratio
    assert abs(sampled - expected) < 5 * math.sqrt(expected * (1 - ratio))


def test_root_sampler_extremes() -> None:
    assert RootSampler(1.0).draw() == 0
    assert RootSampler(0.0).draw() > 10**15

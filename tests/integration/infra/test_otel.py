"""The span collector receives OTLP spans exported by another process via runtime.telemetry."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.otel import SpanCollector

REPO = Path(__file__).resolve().parents[3]

SERVICE = """
from opentelemetry import trace
from runtime.telemetry import setup_tracing, shutdown_tracing

assert setup_tracing("wrtest-otel-child"), "no endpoint seen"
tracer = trace.get_tracer("wrtest")
with tracer.start_as_current_span("handle-request", attributes={"http.method": "GET"}) as root:
    root.set_attribute("wr.count", 3)
    root.set_attribute("wr.tags", ["a", "b"])
    with tracer.start_as_current_span("call-module", attributes={"wr.module": "echo"}):
        pass
shutdown_tracing()
"""


def test_spans_from_a_subprocess_arrive_decoded(span_collector: SpanCollector) -> None:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": span_collector.endpoint}
    env.pop("OTEL_SDK_DISABLED", None)
    done = subprocess.run(
        [sys.executable, "-c", SERVICE],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr

    span_collector.wait_for(
        lambda got: {"handle-request", "call-module"} <= {s.name for s in got},
        deadline_s=15,
        what="both spans of the child",
    )
    spans = {s.name: s for s in span_collector.spans("wrtest-otel-child")}
    root, child = spans["handle-request"], spans["call-module"]
    assert root.parent_span_id is None
    assert child.parent_span_id == root.span_id
    assert child.trace_id == root.trace_id and len(root.trace_id) == 32
    assert root.attributes == {"http.method": "GET", "wr.count": 3, "wr.tags": ["a", "b"]}
    assert child.attributes == {"wr.module": "echo"}
    assert root.service_name == "wrtest-otel-child"


def test_wait_for_times_out_naming_what_arrived(span_collector: SpanCollector) -> None:
    span_collector.clear()
    assert span_collector.spans() == []
    with pytest.raises(TimeoutError, match=r"a span named 'never'; received \[\]"):
        span_collector.wait_for_span("never", deadline_s=0.1)

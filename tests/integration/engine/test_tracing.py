"""Traces: the engine's span per request continues the caller's trace, the caller's guest span
is its child, and the guest's outbound call carries the guest span's context, so caller ->
echo forms one tree: engine span -> guest span -> echo's engine span -> echo's guest span."""

from __future__ import annotations

import json

import pytest

from tests.infra.otel import SpanCollector
from tests.integration.engine.conftest import TRACING, StubProxy, module_toml

pytestmark = pytest.mark.slow

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
INCOMING = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def test_caller_and_echo_spans_form_one_trace(  # type: ignore[no-untyped-def]
    components, start_engine, stub_proxy: StubProxy, span_collector: SpanCollector
) -> None:
    engine = start_engine(
        module_toml("echo", components["echo"], capabilities=TRACING)
        + module_toml("caller", components["caller"], capabilities=TRACING),
        proxy=stub_proxy.address,
        otlp=span_collector.endpoint,
    )
    stub_proxy.engine_base = engine.base
    status, _, body = engine.call(
        "example.caller", "/run", b"traced", headers={"traceparent": INCOMING}
    )
    assert (status, json.loads(body)) == (200, {"reply": "traced"})

    spans = span_collector.wait_for(
        lambda got: (
            {"POST example.caller", "caller.run", "POST example.echo", "echo.echo"}
            <= {s.name for s in got if s.trace_id == TRACE_ID}
        ),
        what="the caller's and echo's engine and guest spans",
    )
    by_name = {s.name: s for s in spans if s.trace_id == TRACE_ID}
    caller, echo = by_name["POST example.caller"], by_name["POST example.echo"]
    caller_guest, echo_guest = by_name["caller.run"], by_name["echo.echo"]
    assert caller.service_name == "wr-engine"
    assert caller.parent_span_id == "b7ad6b7169203331"
    assert caller_guest.parent_span_id == caller.span_id
    assert echo.parent_span_id == caller_guest.span_id
    assert echo_guest.parent_span_id == echo.span_id
    sent = stub_proxy.seen[0].headers["traceparent"]
    assert sent.startswith(f"00-{TRACE_ID}-{caller_guest.span_id}-")
    assert echo.attributes["wr.module"] == "echo"
    assert echo.attributes["http.response.status_code"] == 200

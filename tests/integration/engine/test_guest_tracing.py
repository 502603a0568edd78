"""The tracing capability in a real engine: guest spans join the request's trace under the
engine's span, carry what the guest recorded, parent the guest's outbound calls, and a guest
that misuses spans (too many, unbalanced, forged handles, bad incoming ids) fails only its
own request."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.infra.otel import ReceivedSpan, SpanCollector
from tests.integration.engine.conftest import TRACING, Engine, StubProxy, module_toml

pytestmark = pytest.mark.slow

GUEST = Path(__file__).parent / "guests" / "tracer"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
ERROR = 2  # OTLP status code


@pytest.fixture(scope="module")
def tracer_wasm() -> Path:
    """The tracer test guest, built and precompiled like tests/infra/components.py does."""
    from runtime.engine.component_cache import ComponentCache
    from tests.infra.components import compiled_cache_dir
    from wrctl.build.cached import build_cached

    wasm = build_cached(GUEST)
    ComponentCache(compiled_cache_dir()).ensure(wasm)
    return wasm


@pytest.fixture
def traced_engine(  # type: ignore[no-untyped-def]
    tracer_wasm: Path,
    components,
    start_engine: Callable[..., Engine],
    stub_proxy: StubProxy,
    span_collector: SpanCollector,
) -> Engine:
    span_collector.clear()
    engine = start_engine(
        module_toml("tracer", tracer_wasm, capabilities=TRACING)
        + module_toml("echo", components["echo"], capabilities=TRACING),
        proxy=stub_proxy.address,
        otlp=span_collector.endpoint,
    )
    stub_proxy.engine_base = engine.base
    return engine


def _trace(
    collector: SpanCollector, names: set[str], trace_id: str = TRACE_ID
) -> dict[str, ReceivedSpan]:
    spans = collector.wait_for(
        lambda got: names <= {s.name for s in got if s.trace_id == trace_id},
        what=f"spans {sorted(names)}",
    )
    return {s.name: s for s in spans if s.trace_id == trace_id}


def test_guest_spans_nest_under_the_engine_span_with_what_the_guest_recorded(
    traced_engine: Engine, stub_proxy: StubProxy, span_collector: SpanCollector
) -> None:
    status, _, body = traced_engine.call(
        "example.tracer", "/annotate", headers={"traceparent": INCOMING}
    )
    assert (status, body) == (200, b"ok")
    spans = _trace(
        span_collector, {"POST example.tracer", "outer", "inner", "POST example.echo", "echo.echo"}
    )
    engine, outer, inner = spans["POST example.tracer"], spans["outer"], spans["inner"]
    assert engine.parent_span_id == "00f067aa0ba902b7"
    assert outer.parent_span_id == engine.span_id and outer.service_name == "wr-engine"
    assert inner.parent_span_id == outer.span_id
    # the outbound call made inside `inner` carries inner's context
    assert stub_proxy.seen[0].headers["traceparent"] == f"00-{TRACE_ID}-{inner.span_id}-01"
    assert spans["POST example.echo"].parent_span_id == inner.span_id
    assert spans["echo.echo"].parent_span_id == spans["POST example.echo"].span_id
    assert spans["echo.echo"].attributes["message.bytes"] == 1
    assert {k: outer.attributes[k] for k in ("text", "flag", "count", "ratio", "late")} == {
        "text": "t",
        "flag": True,
        "count": 7,
        "ratio": 0.5,
        "late": "yes",
    }
    assert outer.events == (("checked", {"rules": 3}),)
    assert outer.status == (ERROR, "it went wrong")


def test_more_than_max_spans_fails_the_request_and_the_engine_lives(
    traced_engine: Engine,
) -> None:
    status, _, body = traced_engine.call("example.tracer", "/hold", b"1024")
    assert (status, body) == (200, b"held")
    status, _, body = traced_engine.call("example.tracer", "/hold", b"1025")
    assert status == 500
    assert b"over 1024 live spans in one request" in body
    pids = traced_engine.worker_pids()
    status, _, body = traced_engine.call("example.tracer", "/hold", b"3")
    assert (status, body) == (200, b"held")
    assert traced_engine.worker_pids() == pids  # the same worker served on


def test_unclosed_and_unbalanced_spans(
    traced_engine: Engine, stub_proxy: StubProxy, span_collector: SpanCollector
) -> None:
    assert (
        traced_engine.call("example.tracer", "/leak", headers={"traceparent": INCOMING})[0] == 200
    )
    spans = _trace(span_collector, {"left-open-a", "left-open-b"})
    assert spans["left-open-a"].attributes["wr.span.unclosed"] is True
    assert spans["left-open-b"].parent_span_id == spans["left-open-a"].span_id

    span_collector.clear()
    other = f"00-{TRACE_ID[::-1]}-00f067aa0ba902b7-01"
    status, _, _ = traced_engine.call(
        "example.tracer", "/unbalanced", headers={"traceparent": other}
    )
    assert status == 200
    spans = _trace(span_collector, {"first", "second", "POST example.echo"}, TRACE_ID[::-1])
    first, second = spans["first"], spans["second"]
    assert second.parent_span_id == first.span_id
    assert second.attributes["after.parent.closed"] is True
    assert "wr.span.unclosed" not in first.attributes
    # with `first` closed, the call goes out under the span still open
    assert spans["POST example.echo"].parent_span_id == second.span_id


def test_a_forged_span_handle_fails_only_that_request(traced_engine: Engine) -> None:
    status, _, body = traced_engine.call("example.tracer", "/forged")
    assert status == 500 and b"trapped" in body
    assert traced_engine.call("example.tracer", "/hold", b"2")[0] == 200


@pytest.mark.parametrize(
    "traceparent",
    [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        f"00-{TRACE_ID}-0000000000000000-01",  # all-zero parent id
        "not-a-traceparent",
    ],
)
def test_bad_incoming_ids_start_a_fresh_trace(
    traced_engine: Engine, span_collector: SpanCollector, traceparent: str
) -> None:
    status, _, body = traced_engine.call(
        "example.tracer", "/annotate", headers={"traceparent": traceparent}
    )
    assert (status, body) == (200, b"ok")
    spans = span_collector.wait_for(
        lambda got: {"outer", "POST example.tracer"} <= {s.name for s in got}, what="outer"
    )
    by_name = {s.name: s for s in spans}
    outer, engine = by_name["outer"], by_name["POST example.tracer"]
    assert outer.trace_id == engine.trace_id != "0" * 32
    assert outer.parent_span_id == engine.span_id


def test_a_root_span_starts_its_own_trace(
    traced_engine: Engine, stub_proxy: StubProxy, span_collector: SpanCollector
) -> None:
    assert (
        traced_engine.call("example.tracer", "/root", headers={"traceparent": INCOMING})[0] == 200
    )
    fresh = span_collector.wait_for_span("fresh")
    assert fresh.trace_id != TRACE_ID and fresh.parent_span_id is None
    sent = stub_proxy.seen[0].headers["traceparent"]
    assert sent.startswith(f"00-{fresh.trace_id}-{fresh.span_id}-")
    assert int(sent[-2:], 16) & 1, "sampled"  # OpenTelemetry may add the random-id flag (2)


def test_span_cost_in_the_guest(traced_engine: Engine) -> None:
    status, _, body = traced_engine.call("example.tracer", "/bench", b"200")
    assert status == 200
    cost = json.loads(body)
    assert 0 < cost["sdk_us"] < 1000 and 0 < cost["raw_us"] < 1000  # bench/ measures the goal


def test_spans_of_the_last_request_are_exported_when_the_engine_stops(
    traced_engine: Engine, span_collector: SpanCollector
) -> None:
    """Stopped right after a request (well inside the exporter's 200 ms batch delay), the
    workers are asked to stop and flush, not killed with the spans still buffered."""
    status, _, _ = traced_engine.call(
        "example.tracer", "/annotate", headers={"traceparent": INCOMING}
    )
    assert status == 200
    traced_engine.process.stop()
    spans = _trace(span_collector, {"outer", "inner"})
    assert spans["inner"].parent_span_id == spans["outer"].span_id

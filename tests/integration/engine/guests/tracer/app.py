"""A guest for the tracing capability: nesting, limits, unbalanced closes, forged handles and
the guest-side cost of a span."""

import contextlib
import time

from wit_world.imports import span as raw

from wr_sdk import Module, Request, call, tracing

app = Module()
ECHO = "http://example.echo/echo.EchoService/Echo"  # bodies: EchoRequest(message=<1 char>)
_kept: list[tracing.Span] = []  # /leak: referenced, so the guest never drops them


def _count(request: Request) -> int:
    return int(request.body.decode() or "1")


@app.route("/annotate")
def annotate(request: Request) -> str:
    """Every kind of attribute, an event and an error status; a child span and a call."""
    with tracing.span("outer", text="t", flag=True, count=7, ratio=0.5) as outer:
        outer.set("late", "yes")
        outer.event("checked", rules=3)
        with tracing.span("inner"):
            call(ECHO, b"\n\x01x")
        outer.error("it went wrong")
    return "ok"


@app.route("/hold")
def hold(request: Request) -> str:
    """Open N nested spans and keep them all open until the end of the request."""
    with contextlib.ExitStack() as stack:
        for i in range(_count(request)):
            stack.enter_context(tracing.span(f"s{i}"))
    return "held"


@app.route("/leak")
def leak(request: Request) -> str:
    """Open spans and never close them: the engine ends them with the request."""
    _kept.append(tracing.span("left-open-a"))
    _kept.append(tracing.span("left-open-b"))
    return "leaked"


@app.route("/unbalanced")
def unbalanced(request: Request) -> str:
    """Close the parent before its child, close twice, then call out."""
    a = tracing.span("first")
    b = tracing.span("second")
    a.close()
    a.close()
    b.set("after.parent.closed", True)
    call(ECHO, b"\n\x01y")
    b.close()
    return "ok"


@app.route("/forged")
def forged(request: Request) -> str:
    """Use a span handle the host never gave out."""
    fake = object.__new__(raw.ActiveSpan)
    fake.handle = 4242  # type: ignore[attr-defined]
    fake.set_attribute("k", raw.AttributeValue_Text("v"))
    return "unreachable"


@app.route("/root")
def root(request: Request) -> str:
    with tracing.root_span("fresh"):
        call(ECHO, b"\n\x01z")
    return "ok"


@app.route("/bench")
def bench(request: Request) -> dict[str, float]:
    """Guest-side microseconds per span open+close (with one attribute), over N spans."""
    n = _count(request)
    started = time.perf_counter()
    for _ in range(n):
        with tracing.span("bench", i=1):
            pass
    per = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for _ in range(n):
        with tracing.span("bench"):
            pass
    bare = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for _ in range(n):
        raw.start("bench", []).__exit__(None, None, None)
    raw_per = (time.perf_counter() - started) / n * 1e6
    return {"sdk_us": per, "sdk_no_attr_us": bare, "raw_us": raw_per}

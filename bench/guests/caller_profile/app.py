"""Bench guest: the quick start's caller (/run: body -> echo.Echo -> JSON), with a clock around
each step of the SDK, answered as JSON {step: ms} (bench/engine_profile.py). The SDK's own
helpers are wrapped where they exist, so the same guest profiles older SDKs too."""

import json
import time
import weakref

from echo_pb2 import EchoRequest
from echo_wr import EchoServiceClient

import wr_sdk._host as host
from wr_sdk import Module, Request, Response, config, log, tracing

app = Module()
echo = EchoServiceClient("example", "echo")
clock = time.perf_counter
steps: dict[str, float] = {}


def timed(name: str, fn):  # type: ignore[no-untyped-def]
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        t = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            steps[name] = steps.get(name, 0.0) + (clock() - t) * 1000

    return wrapper


for _name in ("_write_file", "_read_file", "_remove"):
    if hasattr(host, _name):
        setattr(host, _name, timed(_name.strip("_"), getattr(host, _name)))
if host._outbound is not None:
    host._outbound = type(  # type: ignore[assignment]
        "Outbound",
        (),
        {
            "OutboundRequest": host._outbound.OutboundRequest,
            "send": staticmethod(timed("send import", host._outbound.send)),
        },
    )


@app.route("/run")
def run(request: Request) -> Response:
    inline_max = request.header("x-bench-inline-max")
    if inline_max is not None:  # the crossover run sets the SDK's threshold per request
        host.INLINE_BODY_MAX = int(inline_max)
    t0 = clock()
    message = request.body.decode() or config.get("GREETING", "hello")
    t1 = clock()
    with tracing.span("caller.run", **{"message.bytes": len(message)}):
        t2 = clock()
        req = EchoRequest(message=message)
        t3 = clock()
        reply = echo.echo(req)
        t4 = clock()
    t5 = clock()
    log.info(f"echo answered {reply.message!r}")
    t6 = clock()
    json.dumps({"reply": reply.message}).encode()  # what the caller answers
    t7 = clock()
    inner = sum(steps.values())
    out = {
        "body read": (t1 - t0) * 1000,
        "span open": (t2 - t1) * 1000,
        "request message": (t3 - t2) * 1000,
        "echo.echo (all)": (t4 - t3) * 1000,
        "echo.echo outside the timed steps": (t4 - t3) * 1000 - inner,
        **steps,
        "span close": (t5 - t4) * 1000,
        "log.info": (t6 - t5) * 1000,
        "json": (t7 - t6) * 1000,
        "handler total": (t7 - t0) * 1000,
    }
    return Response(200, json.dumps(out).encode(), [("content-type", "application/json")])


@app.route("/twice")
def twice(request: Request) -> Response:
    """Each host-touching step twice in one fresh instance: the first pays first-touch costs
    (page copies, lazy set-up), the second only the step itself."""
    out: dict[str, float] = {}

    def step(name: str, fn) -> None:  # type: ignore[no-untyped-def]
        for i in (1, 2):
            t = clock()
            fn()
            out[f"{name} #{i}"] = (clock() - t) * 1000

    class Target:
        pass

    keep = [Target(), Target()]
    step("weakref.finalize", lambda: weakref.finalize(keep.pop(), int).detach())
    step("config.get (first host call)", lambda: config.get("GREETING"))
    step("span open+close", lambda: tracing.span("s", n=1).close())
    step("span open+close, no attrs", lambda: tracing.span("s").close())
    step("span attrs built (SDK)", lambda: tracing._attrs({"n": 1}))
    attrs = tracing._attrs({"n": 1})
    step(
        "span start+drop, attrs prebuilt",
        lambda: tracing._span.start("s", attrs).__exit__(None, None, None),
    )
    step("span start+drop, text attr", lambda: tracing.span("s", t="x").close())
    step("log.info", lambda: log.info("x"))
    step("config.get", lambda: config.get("GREETING"))
    step("request message", lambda: EchoRequest(message="x" * 100).SerializeToString())
    step("json", lambda: json.dumps({"reply": "x" * 100}).encode())
    return Response(200, json.dumps(out).encode(), [("content-type", "application/json")])

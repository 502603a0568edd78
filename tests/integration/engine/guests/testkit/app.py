"""A guest for the engine tests: echo, headers, busy loop, allocation, trap, state, calls."""

import json
import os

from wr_sdk import Module, Request, Response, call, config

app = Module()
COUNTER = {"calls": 0, "token": None}


@app.route("/echo")
def echo(request: Request) -> Response:
    return Response(200, request.body, [("content-type", "application/octet-stream")])


@app.route("/headers")
def headers(request: Request) -> Response:
    """The request's headers as JSON; answers with repeated and custom headers."""
    reply = [("content-type", "application/json"), ("x-multi", "1"), ("x-multi", "2")]
    return Response(201, json.dumps(request.headers).encode(), reply)


@app.route("/spin")
def spin(request: Request) -> str:
    n = 0
    while True:
        n += 1


@app.route("/alloc")
def alloc(request: Request) -> str:
    hoard = []
    while True:
        hoard.append(bytearray(8 << 20))


@app.route("/trap")
def trap(request: Request) -> str:
    os.abort()


@app.route("/state")
def state(request: Request) -> dict:
    """Fresh instance per request: the counter is always 0 before this call bumps it."""
    before = COUNTER["calls"]
    seen = COUNTER["token"]
    COUNTER["calls"] += 1
    COUNTER["token"] = request.header("x-token")
    total = sum(range(20000))  # some work, so concurrent requests overlap
    return {"before": before, "seen": seen, "token": COUNTER["token"], "work": total}


@app.route("/config")
def show_config(request: Request) -> dict:
    return {"all": config.all(), "greeting": config.get("GREETING")}


@app.route("/call")
def do_call(request: Request) -> Response:
    """Body: JSON {"url", "size", "version"}; calls url with size bytes and reports the reply."""
    spec = json.loads(request.body)
    payload = bytes(i % 251 for i in range(spec.get("size", 0)))
    reply = call(
        spec["url"],
        payload,
        version=spec.get("version"),
        headers=[("x-wr-source", "spoofed"), ("x-custom", "yes")],
    )
    return Response(reply.status, reply.body, [("x-reply-status", str(reply.status))])


@app.route("/chain")
def chain(request: Request) -> Response:
    """Body: JSON list of module hosts still to call, e.g. ["example.b", "example.c"]; calls
    the first with the rest, and answers with the path the chain took."""
    hops = json.loads(request.body or b"[]")
    me = config.get("NAME", "?")
    if not hops:
        return Response(200, me.encode())
    reply = call(f"http://{hops[0]}/chain", json.dumps(hops[1:]).encode())
    return Response(reply.status, me.encode() + b">" + reply.body)


@app.route("/fanout")
def fanout(request: Request) -> dict:
    """Body: JSON {"url", "n"}: calls url n times (each with its index as the body) and
    reports the statuses and bodies."""
    spec = json.loads(request.body)
    replies = [call(spec["url"], str(i).encode()) for i in range(spec["n"])]
    return {"statuses": [r.status for r in replies], "bodies": [r.body.decode() for r in replies]}

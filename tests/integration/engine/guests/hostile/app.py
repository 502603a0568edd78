"""A guest that misbehaves on request, for the engine's limit tests: bad statuses, floods of
stdout, /wr-io and stderr, oversized headers, malformed outbound calls, planted links."""

import json
import os

from componentize_py_types import Err
from wit_world.imports import outbound

from wr_sdk import CallError, Module, Request, Response, call

app = Module()
MIB = 1 << 20


@app.route("/status")
def status(request: Request) -> Response:
    """Answer with the status given as the body (0, 100, 199, 600, ...)."""
    return Response(int(request.body), b"odd status", [("content-type", "text/plain")])


@app.route("/stdout")
def flood_stdout(request: Request) -> Response:
    """Write {"mib": N} MiB straight to stdout (the response body), 1 MiB at a time."""
    chunk = b"o" * MIB
    for _ in range(json.loads(request.body)["mib"]):
        view = memoryview(chunk)
        while view:
            view = view[os.write(1, view) :]
    return Response(200, b"")


@app.route("/io")
def flood_io(request: Request) -> Response:
    """Write {"mib": N} MiB to /wr-io, spread over {"files": K} files (in a subdirectory
    when {"nested": true}); {"empty": M} more empty files."""
    spec = json.loads(request.body)
    base = "/wr-io/deep" if spec.get("nested") else "/wr-io"
    if spec.get("nested"):
        os.mkdir(base)
    files = max(1, spec.get("files", 1))
    chunk = b"i" * MIB
    for i in range(spec.get("mib", 0)):
        with open(f"{base}/f{i % files}", "ab") as f:
            f.write(chunk)
    for i in range(spec.get("empty", 0)):
        open(f"{base}/e{i}", "wb").close()
    return Response(200, b"survived")


@app.route("/stderr")
def stderr(request: Request) -> Response:
    """print() each line of the body (the SDK sends print() to stderr), {"repeat"} times."""
    spec = json.loads(request.body)
    for _ in range(spec.get("repeat", 1)):
        for line in spec["lines"]:
            print(line)
    return Response(200, b"printed")


@app.route("/headers")
def big_headers(request: Request) -> Response:
    """Answer with {"kib": N} KiB of response headers."""
    n = json.loads(request.body)["kib"]
    return Response(200, b"", [(f"x-h{i}", "v" * 1000) for i in range(n)])


@app.route("/call")
def do_call(request: Request) -> Response:
    """Make the outbound call {"url", "method", "headers", "size"} describes, {"times"} times;
    the answer says what came back last: {"status", "size"} or {"error": exception type,
    "message"}."""
    spec = json.loads(request.body)
    try:
        for _ in range(spec.get("times", 1)):
            reply = call(
                spec["url"],
                b"c" * spec.get("size", 0),
                method=spec.get("method", "POST"),
                headers=[tuple(h) for h in spec.get("headers", [])],
            )
    except CallError as exc:
        return Response(
            200, json.dumps({"error": type(exc).__name__, "message": str(exc)}).encode()
        )
    return Response(200, json.dumps({"status": reply.status, "size": len(reply.body)}).encode())


@app.route("/planted")
def planted(request: Request) -> Response:
    """Plant links in /wr-io and ask the host to send or overwrite through them."""
    results = {}
    for name, target in (("abs", "/etc/hostname"), ("rel", "../stdout")):
        try:
            os.symlink(target, f"/wr-io/{name}")
            results[f"link-{name}"] = "made"
        except OSError as exc:
            results[f"link-{name}"] = f"refused: {exc.strerror}"
        req = outbound.OutboundRequest(
            method="POST",
            url="https://api.example.com/x",
            headers=[],
            body=b"",
            body_file=name,
            version=None,
        )
        try:
            answer = outbound.send(req)
            results[f"send-{name}"] = f"sent {answer.body_size} bytes"
        except Err as exc:
            results[f"send-{name}"] = str(exc.value)
    return Response(200, json.dumps(results).encode())

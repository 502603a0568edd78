"""Bench guest: returns the request body unchanged (the SDK's minimum, no protobuf)."""

from wr_sdk import Module, Request, Response

app = Module()


@app.route("/echo")
def echo(request: Request) -> Response:
    return Response(200, request.body)

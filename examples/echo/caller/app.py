"""The caller module: GET /run calls example.echo with "hello" and returns the reply."""

from echo_pb2 import EchoRequest
from echo_wr import EchoServiceClient

from wr_sdk import Module, Request, log

app = Module()
echo = EchoServiceClient("example", "echo")


@app.route("/run")
def run(request: Request) -> dict[str, str]:
    message = request.body.decode() or "hello"
    reply = echo.echo(EchoRequest(message=message))
    log.info(f"echo answered {reply.message!r}")
    return {"reply": reply.message}

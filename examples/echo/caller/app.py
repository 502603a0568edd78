"""The caller module: /run calls example.echo with the request body, or with the GREETING
from its config when the body is empty, and returns the reply as JSON, inside a span of its own."""

from echo_pb2 import EchoRequest
from echo_wr import EchoServiceClient

from wr_sdk import Module, Request, config, log, tracing

app = Module()
echo = EchoServiceClient("example", "echo")


@app.route("/run")
def run(request: Request) -> dict[str, str]:
    message = request.body.decode() or config.get("GREETING", "hello")
    # The call to echo runs inside this span, so echo's spans are its children.
    with tracing.span("caller.run", **{"message.bytes": len(message)}):
        reply = echo.echo(EchoRequest(message=message))
    log.info(f"echo answered {reply.message!r}")
    return {"reply": reply.message}

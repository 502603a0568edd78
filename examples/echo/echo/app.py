"""The echo module: EchoService.Echo returns the message it was given (in a span)."""

from echo_pb2 import EchoRequest, EchoResponse
from echo_wr import EchoServiceBase

from wr_sdk import Module, tracing

app = Module()


class Echo(EchoServiceBase):
    def echo(self, request: EchoRequest) -> EchoResponse:
        with tracing.span("echo.echo") as span:
            span.set("message.bytes", len(request.message))
            return EchoResponse(message=request.message)


app.serve(Echo())

"""The echo module: EchoService.Echo returns the message it was given."""

from echo_pb2 import EchoRequest, EchoResponse
from echo_wr import EchoServiceBase

from wr_sdk import Module

app = Module()


class Echo(EchoServiceBase):
    def echo(self, request: EchoRequest) -> EchoResponse:
        return EchoResponse(message=request.message)


app.serve(Echo())

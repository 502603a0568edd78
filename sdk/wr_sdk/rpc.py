"""Runtime support for code generated from .proto files: service base classes and clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from google.protobuf.message import DecodeError, Message

from wr_sdk._app import HttpError
from wr_sdk._host import call
from wr_sdk._http import Request, Response

M = TypeVar("M", bound=Message)
PROTO_CONTENT_TYPE = "application/x-protobuf"


class RpcError(Exception):
    """A typed call that came back with a non-2xx status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class Service:
    """Base of generated service classes. METHODS maps an RPC name to (python method, in, out)."""

    SERVICE: ClassVar[str] = ""
    METHODS: ClassVar[dict[str, tuple[str, type[Message], type[Message]]]] = {}

    def wr_routes(self) -> dict[str, Callable[[Request], Response]]:
        return {
            f"/{self.SERVICE}/{rpc}": self._endpoint(attr, in_type)
            for rpc, (attr, in_type, _out) in self.METHODS.items()
        }

    def _endpoint(self, attr: str, in_type: type[Message]) -> Callable[[Request], Response]:
        method = getattr(self, attr)

        def endpoint(request: Request) -> Response:
            message = in_type()
            try:
                message.ParseFromString(request.body)
            except DecodeError as exc:
                raise HttpError(400, f"body is not a valid {in_type.__name__}: {exc}") from None
            result = method(message)
            return Response(200, result.SerializeToString(), [("content-type", PROTO_CONTENT_TYPE)])

        return endpoint


class Client:
    """Base of generated clients: `EchoServiceClient("example", "echo").echo(msg)`."""

    SERVICE: ClassVar[str] = ""

    def __init__(self, namespace: str, module: str, version: str | None = None) -> None:
        self.base_url = f"http://{namespace}.{module}/{self.SERVICE}"
        self.version = version

    def _call(self, rpc: str, request: Message, out_type: type[M]) -> M:
        response = call(
            f"{self.base_url}/{rpc}",
            request.SerializeToString(),
            headers=[("content-type", PROTO_CONTENT_TYPE)],
            version=self.version,
        )
        if not response.ok:
            raise RpcError(response.status, response.body.decode("utf-8", "replace"))
        result = out_type()
        result.ParseFromString(response.body)
        return result


def unimplemented(name: str) -> Any:
    raise HttpError(501, f"{name} is not implemented by this module")

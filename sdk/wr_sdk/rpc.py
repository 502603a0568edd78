"""Runtime support for code generated from .proto files: service base classes and clients."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
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


def warm_messages(pb2_module: ModuleType) -> None:
    """Build the lazily-created field encoders/decoders of every message in a `_pb2` module.

    Pure-Python protobuf creates them on first use. Generated code calls this at import, which
    for a component happens at build time: the snapshot then holds them, instead of every fresh
    instance building them again on every request (measured: ~1 ms per request). A message
    with every scalar field set is then encoded and decoded a few times, so the snapshot also
    holds those paths specialized (measured, 100 B echo: 489 -> 428 page copies and ~0.5 ms
    less per request).
    """
    from google.protobuf import message_factory
    from google.protobuf.internal import api_implementation
    from google.protobuf.internal import python_message as pm

    if api_implementation.Type() != "python" or not hasattr(pm, "_MaybeAddDecoder"):
        return  # the C implementations (host side) have nothing lazy to warm
    pending = list(pb2_module.DESCRIPTOR.message_types_by_name.values())
    seen: set[str] = set()
    while pending:
        desc = pending.pop()
        if desc.full_name in seen:
            continue
        seen.add(desc.full_name)
        cls = message_factory.GetMessageClass(desc)
        for field in desc.fields:
            pm._MaybeAddEncoder(cls, field)
            pm._MaybeAddDecoder(cls, field)
            if field.message_type is not None:
                pending.append(field.message_type)
        pending.extend(desc.nested_types)
        cls().SerializeToString()
        cls.FromString(b"")
        sample = _sample(cls, desc)
        try:
            for _ in range(_WARM_ROUNDS):
                cls.FromString(sample.SerializeToString())
        except Exception:  # e.g. proto2 required fields the sampler left unset: warm less
            pass


# Enough runs for the interpreter to specialize the encode/decode paths (its adaptive
# instructions settle after a few executions), so fresh instances start specialized.
_WARM_ROUNDS = 16
_SAMPLES: dict[str, object] = {
    "TYPE_STRING": "x",
    "TYPE_BYTES": b"x",
    "TYPE_BOOL": True,
    "TYPE_FLOAT": 1.5,
    "TYPE_DOUBLE": 1.5,
}


def _sample(cls: type[Message], desc: Any) -> Message:
    """A message of cls with every scalar field set to a non-default value."""
    from google.protobuf.descriptor import FieldDescriptor as FD

    type_names = {v: k for k, v in vars(FD).items() if k.startswith("TYPE_")}
    msg = cls()
    for field in desc.fields:
        if field.message_type is not None or field.containing_oneof is not None:
            continue
        if field.enum_type is not None:
            value: object = field.enum_type.values[-1].number
        else:
            value = _SAMPLES.get(type_names.get(field.type, ""), 1)
        try:
            if _is_repeated(field):
                getattr(msg, field.name).append(value)
            else:
                setattr(msg, field.name, value)
        except (TypeError, ValueError, AttributeError):
            continue  # a type this sampler does not cover: it stays at its default
    return msg


def _is_repeated(field: Any) -> bool:
    if hasattr(field, "is_repeated"):  # protobuf >= 5.28 (`label` is gone in 6)
        return bool(field.is_repeated)
    from google.protobuf.descriptor import FieldDescriptor as FD

    return bool(field.label == FD.LABEL_REPEATED)


def unimplemented(name: str) -> Any:
    raise HttpError(501, f"{name} is not implemented by this module")

"""The guest SDK's pure parts on the host: dispatch, responses, generated services."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from wr_sdk import GuestOnly, HttpError, Module, Request, Response, call
from wr_sdk.codegen import generate_guest_code
from wr_sdk.codegen.services import snake_case

ECHO_PROTO = Path(__file__).resolve().parents[3] / "examples/echo/schemas/echo.proto"


def request(path: str, body: bytes = b"") -> Request:
    return Request("POST", path, [("x-a", "1")], body)


def test_handler_results_become_responses() -> None:
    app = Module()
    app.add_route("/bytes", lambda r: r.body)
    app.add_route("/text", lambda r: "hi")
    app.add_route("/json", lambda r: {"a": 1})
    app.add_route("/none", lambda r: None)
    app.add_route("/teapot", lambda r: Response(418, b"short and stout"))
    assert app.dispatch(request("/bytes?q", b"\x00\x01")).body == b"\x00\x01"
    assert app.dispatch(request("/text")).header("content-type") == "text/plain; charset=utf-8"
    assert app.dispatch(request("/json")).json() == {"a": 1}
    assert app.dispatch(request("/none")).status == 204
    assert app.dispatch(request("/teapot")).status == 418


def test_errors_become_statuses_not_traps() -> None:
    app = Module()

    def boom(_: Request) -> None:
        raise ValueError("bad thing")

    def denied(_: Request) -> None:
        raise HttpError(403, "no")

    app.add_route("/boom", boom)
    app.add_route("/denied", denied)
    assert (app.dispatch(request("/boom")).status, app.dispatch(request("/boom")).body) == (
        500,
        b"ValueError: bad thing",
    )
    assert app.dispatch(request("/denied")).status == 403
    assert app.dispatch(request("/missing")).status == 404
    assert app.dispatch(request("/__health")).status == 200


def test_routes_are_checked() -> None:
    app = Module()
    app.add_route("/a", lambda r: None)
    with pytest.raises(ValueError, match="registered twice"):
        app.add_route("/a", lambda r: None)
    with pytest.raises(ValueError, match="starts with '/'"):
        app.add_route("a", lambda r: None)


def test_host_imports_outside_a_guest_say_so() -> None:
    with pytest.raises(GuestOnly):
        call("http://example.echo/x")


@pytest.mark.parametrize(
    ("name", "snake"), [("Echo", "echo"), ("GetItems", "get_items"), ("HTTPStatus", "http_status")]
)
def test_snake_case(name: str, snake: str) -> None:
    assert snake_case(name) == snake


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[tuple[ModuleType, ModuleType]]:
    generate_guest_code(ECHO_PROTO, tmp_path)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("echo_pb2"), importlib.import_module("echo_wr")
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("echo_pb2", "echo_wr"):
            sys.modules.pop(name, None)


def test_generated_service_routes_typed_methods(generated: tuple[ModuleType, ModuleType]) -> None:
    pb2, wr = generated

    class Echo(wr.EchoServiceBase):  # type: ignore[name-defined,misc]
        def echo(self, req):  # type: ignore[no-untyped-def]
            return pb2.EchoResponse(message=req.message.upper())

    app = Module()
    app.serve(Echo())
    body = pb2.EchoRequest(message="hey").SerializeToString()
    reply = app.dispatch(request("/echo.EchoService/Echo", body))
    assert reply.status == 200
    assert reply.header("content-type") == "application/x-protobuf"
    assert pb2.EchoResponse.FromString(reply.body).message == "HEY"
    assert app.dispatch(request("/echo.EchoService/Echo", b"\xff\xff")).status == 400

    unimplemented = Module()
    unimplemented.serve(wr.EchoServiceBase())
    assert unimplemented.dispatch(request("/echo.EchoService/Echo", body)).status == 501


def test_generated_client_targets_the_module_url(generated: tuple[ModuleType, ModuleType]) -> None:
    _, wr = generated
    client = wr.EchoServiceClient("example", "echo", version="^1")
    assert client.base_url == "http://example.echo/echo.EchoService"
    assert callable(client.echo)


def test_tracing_outside_a_traced_component_says_what_to_grant() -> None:
    from wr_sdk import tracing

    with pytest.raises(GuestOnly, match=r'capabilities = \["tracing"\] in guest.toml'):
        tracing.span("x", a=1)
    with pytest.raises(GuestOnly):
        tracing.root_span("x")

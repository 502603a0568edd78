"""The engine refuses, at load, a component whose handle/send shapes differ from the ones its
direct marshalling builds and reads (a module built with another wr_sdk's WIT)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from runtime.engine.handler_call import handle_shape_problem
from runtime.engine.send_import import OUTBOUND, send_shape_problem

HANDLER = "wruntime:runtime/handler@0.1.0"


@dataclass
class _Record:
    names: list[str]

    @property
    def fields(self) -> list[tuple[str, Any]]:
        return [(n, None) for n in self.names]


@dataclass
class _Result:
    ok: _Record


@dataclass
class _Func:
    params: list[tuple[str, Any]] = field(default_factory=list)
    result: Any = None


@dataclass
class _Item:
    """A component import/export: an instance type whose exports are functions."""

    funcs: dict[str, _Func]

    @property
    def ty(self) -> _Item:
        return self

    def exports(self, _engine: Any) -> dict[str, Any]:
        return {name: _Extern(f) for name, f in self.funcs.items()}


@dataclass
class _Extern:
    ty: _Func


@dataclass
class _Component:
    imports_: dict[str, _Item]
    exports_: dict[str, _Item]

    @property
    def type(self) -> _Component:
        return self

    def imports(self, _engine: Any) -> dict[str, _Item]:
        return self.imports_

    def exports(self, _engine: Any) -> dict[str, _Item]:
        return self.exports_


def _component(
    send_fields: list[str] | None,
    request: list[str],
    response: list[str],
    send_takes: list[str] | None = None,
) -> Any:
    handle = _Func([("req", _Record(request))], _Record(response))
    imports = {}
    if send_fields is not None:
        params = [("req", _Record(CURRENT_SEND_REQUEST if send_takes is None else send_takes))]
        imports[OUTBOUND] = _Item({"send": _Func(params, _Result(_Record(send_fields)))})
    return _Component(imports, {HANDLER: _Item({"handle": handle})})


CURRENT_SEND = ["status", "headers", "body", "body-file", "body-size"]
CURRENT_SEND_REQUEST = ["method", "url", "headers", "body", "body-file", "version"]
REQUEST = ["method", "path", "headers"]
RESPONSE = ["status", "headers"]


def test_current_shapes_pass() -> None:
    component = _component(CURRENT_SEND, REQUEST, RESPONSE)
    assert send_shape_problem(component, None) is None
    assert handle_shape_problem(component, None, HANDLER) is None


def test_a_module_without_outbound_calls_passes() -> None:
    assert send_shape_problem(_component(None, REQUEST, RESPONSE), None) is None


def test_an_older_send_shape_is_named() -> None:
    older = ["status", "headers", "body-file", "body-size"]  # before inline bodies
    problem = send_shape_problem(_component(older, REQUEST, RESPONSE), None)
    assert problem is not None
    assert f"returns fields {older}" in problem and "'body'" in problem


def test_an_older_send_request_shape_is_named() -> None:
    older = ["method", "url", "headers", "body-file", "version"]  # before inline bodies
    problem = send_shape_problem(_component(CURRENT_SEND, REQUEST, RESPONSE, older), None)
    assert problem is not None
    assert f"takes fields {older}" in problem and "'body'" in problem


def test_another_handle_shape_is_named() -> None:
    problem = handle_shape_problem(
        _component(CURRENT_SEND, [*REQUEST, "body"], RESPONSE), None, HANDLER
    )
    assert problem is not None and "'body'" in problem

"""The `outbound.send` host import, registered with a direct C callback.

wasmtime-py's `LinkerInstance.add_func` wraps a Python function in a trampoline that fetches
the function's type from the C API and walks it to convert the argument and the result, on
every call; measured from inside a guest, that was ~0.7 ms of a 100 B call's ~1.4 ms in
`send`. The types here are fixed by our WIT world (wit/runtime.wit), so the callback reads the
`outbound-request` record and writes the `result<outbound-response, string>` directly; small
bodies (`list<u8>`, both ways) as strided copies (wit_values.read_bytes / set_bytes).
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime.component._enter import catch_exceptions

from runtime.engine.wit_values import (
    Headers,
    boxed,
    read_bytes,
    read_headers,
    read_optional_string,
    read_record,
    read_string,
    set_bytes,
    set_headers,
    set_optional_string,
    set_record,
    set_string,
)


@dataclass
class SendRequest:
    method: str
    url: str
    headers: Headers
    body: bytes  # inline (small) body; empty when body_file names one
    body_file: str | None
    version: str | None


@dataclass
class SendReply:
    status: int
    headers: Headers
    body: bytes  # the body inline, or empty when it is in body_file
    body_file: str | None
    body_size: int


# The handler returns a reply, or the error text the guest gets as `err`.
SendHandler = Callable[[SendRequest], SendReply | str]

OUTBOUND = "wruntime:runtime/outbound@0.1.0"
_REQUEST_FIELDS = ("method", "url", "headers", "body", "body-file", "version")
_RESPONSE_FIELDS = ("status", "headers", "body", "body-file", "body-size")
_handlers: dict[int, SendHandler] = {}
_ids = itertools.count(1)


def add_send(instance: Any, handler: SendHandler) -> None:
    """Define `send` in a LinkerInstance (the `wruntime:runtime/outbound` interface)."""
    key = next(_ids)
    _handlers[key] = handler
    name = b"send"
    err = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(), ctypes.create_string_buffer(name), len(name), _send_impl, key, _finalize
    )
    if err:
        _handlers.pop(key, None)
        raise WasmtimeError._from_ptr(err)


def send_shape_problem(component: Any, engine: Any) -> str | None:
    """Why this component's `send` import does not have the shape the callback writes (it
    was built against another wruntime WIT, e.g. an older wr_sdk), or None when it matches or
    the component makes no outbound calls."""
    imports = component.type.imports(engine)
    item = imports.get(OUTBOUND)
    if item is None:
        return None
    send = getattr(item.ty.exports(engine).get("send"), "ty", None)
    ok = getattr(getattr(send, "result", None), "ok", None)
    fields = [name for name, _ in ok.fields] if ok is not None else []
    if tuple(fields) != _RESPONSE_FIELDS:
        expected = list(_RESPONSE_FIELDS)
        return f"its {OUTBOUND} send returns fields {fields}, this engine writes {expected}"
    params = getattr(send, "params", None) or []
    record = getattr(params[0][1], "fields", None) if len(params) == 1 else None
    taken = [name for name, _ in record] if record is not None else []
    if tuple(taken) != _REQUEST_FIELDS:
        expected = list(_REQUEST_FIELDS)
        return f"its {OUTBOUND} send takes fields {taken}, this engine reads {expected}"
    return None


def _read_request(val: Any) -> SendRequest:
    fields = read_record(val)
    return SendRequest(
        method=read_string(fields["method"]),
        url=read_string(fields["url"]),
        headers=read_headers(fields["headers"]),
        body=read_bytes(fields["body"]),
        body_file=read_optional_string(fields["body-file"]),
        version=read_optional_string(fields["version"]),
    )


def _write_reply(val: Any, reply: SendReply) -> None:
    fields = set_record(val, _RESPONSE_FIELDS)
    fields[0].val.kind = ffi.WASMTIME_COMPONENT_U16
    fields[0].val.of.u16 = reply.status
    set_headers(fields[1].val, reply.headers)
    set_bytes(fields[2].val, reply.body)
    set_optional_string(fields[3].val, reply.body_file)
    fields[4].val.kind = ffi.WASMTIME_COMPONENT_U64
    fields[4].val.of.u64 = reply.body_size


@ffi.wasmtime_component_func_callback_t
def _send_impl(key, context, _ty, args, nargs, results, nresults):  # type: ignore[no-untyped-def]
    def run(_store: Any) -> None:
        if nargs != 1 or nresults != 1:
            raise ValueError("outbound.send: expected one argument and one result")
        try:
            request = _read_request(args[0])
        finally:
            ffi.wasmtime_component_val_delete(ctypes.byref(args[0]))  # ours, as in wasmtime-py
        answer = _handlers[key or 0](request)
        out = results[0]
        out.kind = ffi.WASMTIME_COMPONENT_RESULT
        if isinstance(answer, str):
            out.of.result.is_ok = False
            out.of.result.val = boxed(lambda v: set_string(v, answer))
        else:
            out.of.result.is_ok = True
            out.of.result.val = boxed(lambda v: _write_reply(v, answer))

    return catch_exceptions(context, run)


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _finalize(key):  # type: ignore[no-untyped-def]
    _handlers.pop(key or 0, None)

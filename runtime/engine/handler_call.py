"""One call of the guest's `handler.handle`, with the request and response marshalled directly.

wasmtime-py's generic `Func.__call__` asks the C API for the function's type on every call
and walks it (record fields, list and tuple element types) to convert each value. The
`handle` signature is fixed by our WIT world, so this module builds the C values for
`request {method, path, headers}` and reads `response {status, headers}` without that walk.
Measured in-process: the Python around a call went from about 0.2 ms to about 0.05 ms.
"""

from __future__ import annotations

import ctypes
from ctypes import byref
from typing import Any

from wasmtime import _ffi as ffi
from wasmtime.component._enter import enter_wasm

Headers = list[tuple[str, str]]

_REQUEST_FIELDS = ("method", "path", "headers")


def call_handle(
    store: Any, func: Any, method: str, path: str, headers: Headers
) -> tuple[int, Headers]:
    """Call handle(request) on a fresh instance; returns (status, headers). Raises what the
    call raises (WasmtimeError, Trap). The caller still calls func.post_return(store)."""
    param = (ffi.wasmtime_component_val_t * 1)()
    _set_request(param[0], method, path, headers)
    result = ffi.wasmtime_component_val_t()
    try:

        def run() -> ctypes._Pointer[ffi.wasmtime_error_t]:
            return ffi.wasmtime_component_func_call(
                byref(func._func), store._context(), param, 1, byref(result), 1
            )

        enter_wasm(run)
        try:
            return _read_response(result)
        finally:
            ffi.wasmtime_component_val_delete(byref(result))
    finally:
        ffi.wasmtime_component_val_delete(byref(param[0]))


def _set_string(val: Any, text: str) -> None:
    val.kind = ffi.WASMTIME_COMPONENT_STRING
    val.of.string = ffi.str_to_capi(text)


def _set_request(val: Any, method: str, path: str, headers: Headers) -> None:
    record = ffi.wasmtime_component_valrecord_t()
    ffi.wasmtime_component_valrecord_new_uninit(record, len(_REQUEST_FIELDS))
    for i, name in enumerate(_REQUEST_FIELDS):
        record.data[i].name = ffi.str_to_capi(name)
        record.data[i].val.kind = ffi.WASMTIME_COMPONENT_BOOL  # safe to delete until set
        record.data[i].val.of.boolean = False
    val.kind = ffi.WASMTIME_COMPONENT_RECORD
    val.of.record = record  # owned by val from here: one delete frees the whole tree
    fields = val.of.record.data
    _set_string(fields[0].val, method)
    _set_string(fields[1].val, path)
    items = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(items, len(headers))
    for i in range(len(headers)):
        items.data[i].kind = ffi.WASMTIME_COMPONENT_BOOL
        items.data[i].of.boolean = False
    fields[2].val.kind = ffi.WASMTIME_COMPONENT_LIST
    fields[2].val.of.list = items
    out = fields[2].val.of.list.data
    for i, (name, value) in enumerate(headers):
        pair = ffi.wasmtime_component_valtuple_t()
        ffi.wasmtime_component_valtuple_new_uninit(pair, 2)
        _set_string(pair.data[0], name)
        _set_string(pair.data[1], value)
        out[i].kind = ffi.WASMTIME_COMPONENT_TUPLE
        out[i].of.tuple = pair


def _read_response(val: Any) -> tuple[int, Headers]:
    if val.kind != ffi.WASMTIME_COMPONENT_RECORD.value or val.of.record.size != 2:
        raise ValueError("handle returned something other than a response record")
    fields = val.of.record.data
    status = int(fields[0].val.of.u16)
    items = fields[1].val.of.list
    headers: Headers = []
    for i in range(items.size):
        pair = items.data[i].of.tuple.data
        headers.append((ffi.to_str(pair[0].of.string), ffi.to_str(pair[1].of.string)))
    return status, headers

"""Building and reading component-model values through wasmtime's C API, for fixed WIT types.

wasmtime-py converts every value by asking the C API for its type and walking it, on every
call; for the few signatures the engine calls on every request (`handler.handle`,
`outbound.send`) the types are known, so these helpers build and read the C values directly.
Ownership follows the C API: a value built here is freed by one `wasmtime_component_val_delete`
of its root (or handed to wasmtime, which frees it).
"""

from __future__ import annotations

import ctypes
from typing import Any

from wasmtime import _ffi as ffi

Headers = list[tuple[str, str]]

# A list<u8> is an array of C values, one per byte: the kind at offset 0 and the byte at the
# start of the union. Reading and writing them as strided slices of one buffer keeps small
# inline bodies cheap (a loop over the values in Python costs ~1 us per byte).
_VAL_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)
_U8_AT = ffi.wasmtime_component_val_t.of.offset
_U8 = ffi.WASMTIME_COMPONENT_U8.value


def _blank(val: Any) -> None:
    """A placeholder that is safe to delete until the real value is set."""
    val.kind = ffi.WASMTIME_COMPONENT_BOOL
    val.of.boolean = False


def set_string(val: Any, text: str) -> None:
    val.kind = ffi.WASMTIME_COMPONENT_STRING
    val.of.string = ffi.str_to_capi(text)


def set_headers(val: Any, headers: Headers) -> None:
    """list<tuple<string, string>>"""
    items = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(items, len(headers))
    for i in range(len(headers)):
        _blank(items.data[i])
    val.kind = ffi.WASMTIME_COMPONENT_LIST
    val.of.list = items  # owned by val from here
    out = val.of.list.data
    for i, (name, value) in enumerate(headers):
        pair = ffi.wasmtime_component_valtuple_t()
        ffi.wasmtime_component_valtuple_new_uninit(pair, 2)
        set_string(pair.data[0], name)
        set_string(pair.data[1], value)
        out[i].kind = ffi.WASMTIME_COMPONENT_TUPLE
        out[i].of.tuple = pair


def set_optional_string(val: Any, text: str | None) -> None:
    val.kind = ffi.WASMTIME_COMPONENT_OPTION
    val.of.option = None if text is None else boxed(lambda v: set_string(v, text))


def set_bytes(val: Any, data: bytes) -> None:
    """list<u8>"""
    items = ffi.wasmtime_component_vallist_t()
    size = len(data)
    ffi.wasmtime_component_vallist_new_uninit(items, size)
    if size:
        raw = bytearray(size * _VAL_SIZE)
        raw[0::_VAL_SIZE] = bytes((_U8,)) * size
        raw[_U8_AT::_VAL_SIZE] = data
        ctypes.memmove(items.data, (ctypes.c_char * len(raw)).from_buffer(raw), len(raw))
    val.kind = ffi.WASMTIME_COMPONENT_LIST
    val.of.list = items  # owned by val from here


def set_record(val: Any, names: tuple[str, ...]) -> Any:
    """Make val a record with these fields (all placeholders); returns its field array, whose
    `.val`s the caller then sets in order."""
    record = ffi.wasmtime_component_valrecord_t()
    ffi.wasmtime_component_valrecord_new_uninit(record, len(names))
    for i, name in enumerate(names):
        record.data[i].name = ffi.str_to_capi(name)
        _blank(record.data[i].val)
    val.kind = ffi.WASMTIME_COMPONENT_RECORD
    val.of.record = record  # owned by val from here
    return val.of.record.data


def boxed(fill: Any) -> Any:
    """A heap copy of a value that `fill(val)` sets: the payload of an option or result."""
    raw = ffi.wasmtime_component_val_t()
    _blank(raw)
    fill(raw)
    return ffi.wasmtime_component_val_new(ctypes.byref(raw))


def read_string(val: Any) -> str:
    if val.kind != ffi.WASMTIME_COMPONENT_STRING.value:
        raise ValueError("expected a string")
    return ffi.to_str(val.of.string)


def read_optional_string(val: Any) -> str | None:
    if val.kind != ffi.WASMTIME_COMPONENT_OPTION.value:
        raise ValueError("expected an option")
    return read_string(val.of.option.contents) if val.of.option else None


def read_bytes(val: Any) -> bytes:
    """list<u8>"""
    if val.kind != ffi.WASMTIME_COMPONENT_LIST.value:
        raise ValueError("expected a list of bytes")
    items = val.of.list
    size = items.size
    if not size:
        return b""
    raw = ctypes.string_at(items.data, size * _VAL_SIZE)
    if raw[0::_VAL_SIZE] != bytes((_U8,)) * size:
        raise ValueError("expected a list of u8")
    return raw[_U8_AT::_VAL_SIZE]


def read_headers(val: Any) -> Headers:
    if val.kind != ffi.WASMTIME_COMPONENT_LIST.value:
        raise ValueError("expected a list of headers")
    items = val.of.list
    headers: Headers = []
    for i in range(items.size):
        pair = items.data[i].of.tuple.data
        headers.append((read_string(pair[0]), read_string(pair[1])))
    return headers


def read_record(val: Any) -> dict[str, Any]:
    """A record's fields by name (the C values, still owned by val)."""
    if val.kind != ffi.WASMTIME_COMPONENT_RECORD.value:
        raise ValueError("expected a record")
    fields = val.of.record
    return {ffi.to_str(fields.data[i].name): fields.data[i].val for i in range(fields.size)}

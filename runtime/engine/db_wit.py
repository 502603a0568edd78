"""The C values of the db capability's WIT types (`wruntime:db/database`), read and built
directly (host_abi.add_direct_func): parameters (list<pg-value>) in, result<list<row>,
db-error> and friends out.

Ownership follows the C API (see wit_values.py): what is built here belongs to the root value
it is written into. Strings are written in place with wasm_byte_vec_new, and placeholders are
zeroed memory (kind 0 is bool false, safe to free), which made a result column 2.6x cheaper
than building it with wasmtime-py's helpers; list<u8> (bytea) crosses in one copy.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi

from runtime.engine import db_values
from runtime.engine.db_values import DbFailure
from runtime.engine.wit_values import boxed, set_record, set_string

_VAL_SIZE = ctypes.sizeof(ffi.wasmtime_component_val_t)
_VAL_OF = ffi.wasmtime_component_val_t.of.offset
K = ffi  # kinds: K.WASMTIME_COMPONENT_*
_U8 = K.WASMTIME_COMPONENT_U8.value
_ENTRY_SIZE = ctypes.sizeof(ffi.wasmtime_component_valrecord_entry_t)
_ENTRY_VAL = ffi.wasmtime_component_valrecord_entry_t.val.offset
assert K.WASMTIME_COMPONENT_BOOL.value == 0  # so zeroed memory is a valid placeholder (false)
# wasm_byte_vec_new writing straight into the struct it is given (a string's or a name's
# place in a value): wasmtime-py's str_to_capi costs ~4 us a string, this ~1 us. A separate
# function object, so wasmtime-py's own prototype of the symbol is left as it is.
_vec_new = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)(
    ("wasm_byte_vec_new", ffi.dll)
)
_BLANK = ffi.wasmtime_component_val_t()


def _read(val: Any) -> Any:
    """A C value of a pg-value payload as Python (lists of u8 as bytes)."""
    kind = val.kind
    if kind == K.WASMTIME_COMPONENT_STRING.value:
        return ffi.to_str(val.of.string)
    if kind == K.WASMTIME_COMPONENT_S64.value:
        return int(val.of.s64)
    if kind == K.WASMTIME_COMPONENT_S32.value:
        return int(val.of.s32)
    if kind == K.WASMTIME_COMPONENT_S16.value:
        return int(val.of.s16)
    if kind == K.WASMTIME_COMPONENT_U32.value:
        return int(val.of.u32)
    if kind == K.WASMTIME_COMPONENT_U64.value:
        return int(val.of.u64)
    if kind == K.WASMTIME_COMPONENT_BOOL.value:
        return bool(val.of.boolean)
    if kind == K.WASMTIME_COMPONENT_F64.value:
        return float(val.of.f64)
    if kind == K.WASMTIME_COMPONENT_F32.value:
        return float(val.of.f32)
    if kind == K.WASMTIME_COMPONENT_LIST.value:
        items = val.of.list
        if items.size and items.data[0].kind == _U8:  # bytea: one slice, not a loop per byte
            raw = ctypes.string_at(ctypes.cast(items.data, ctypes.c_void_p), items.size * _VAL_SIZE)
            return raw[_VAL_OF::_VAL_SIZE]
        return [_read(items.data[i]) for i in range(items.size)]
    if kind == K.WASMTIME_COMPONENT_OPTION.value:
        return _read(val.of.option.contents) if val.of.option else None
    if kind == K.WASMTIME_COMPONENT_TUPLE.value:
        t = val.of.tuple
        return tuple(_read(t.data[i]) for i in range(t.size))
    if kind == K.WASMTIME_COMPONENT_RECORD.value:
        r = val.of.record
        return tuple(_read(r.data[i].val) for i in range(r.size))
    raise WasmtimeError(f"db: unexpected value kind {kind}")


def read_params(val: Any) -> list[Any]:
    """list<pg-value> -> asyncpg arguments (BadParameter names the bad one)."""
    if val.kind != K.WASMTIME_COMPONENT_LIST.value:
        raise WasmtimeError("db: expected a list of parameters")
    items = val.of.list
    out = []
    for i in range(items.size):
        variant = items.data[i].of.variant
        case = ffi.to_str(variant.discriminant)
        payload = _read(variant.val.contents) if variant.val else None
        out.append(db_values.to_param(i + 1, case, payload))
    return out


def _set_str(val: Any, text: str) -> None:
    data = text.encode()
    val.kind = K.WASMTIME_COMPONENT_STRING
    _vec_new(ctypes.addressof(val) + _VAL_OF, len(data), data)


def _new_list(val: Any, size: int) -> Any:
    """Make val a list of `size` placeholders; returns the element array."""
    items = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(items, size)
    if size:
        ctypes.memset(items.data, 0, size * _VAL_SIZE)
    val.kind = K.WASMTIME_COMPONENT_LIST
    val.of.list = items
    return val.of.list.data


def _new_record(val: Any, names: tuple[bytes, ...]) -> int:
    """Make val a record with these fields (placeholders); returns the entries' address."""
    record = ffi.wasmtime_component_valrecord_t()
    ffi.wasmtime_component_valrecord_new_uninit(record, len(names))
    base = ctypes.cast(record.data, ctypes.c_void_p).value or 0
    ctypes.memset(base, 0, len(names) * _ENTRY_SIZE)
    for i, name in enumerate(names):
        _vec_new(base + i * _ENTRY_SIZE, len(name), name)
    val.kind = K.WASMTIME_COMPONENT_RECORD
    val.of.record = record
    return base


def _field(base: int, index: int) -> Any:
    return ffi.wasmtime_component_val_t.from_address(base + index * _ENTRY_SIZE + _ENTRY_VAL)


def _boxed(fill: Callable[[Any], None]) -> Any:
    """A heap value (the payload of a variant, option or result), filled in place."""
    ptr = ffi.wasmtime_component_val_new(ctypes.byref(_BLANK))
    fill(ptr.contents)
    return ptr


def _set_scalar(kind: Any, attr: str) -> Callable[[Any, Any], None]:
    def fill(val: Any, value: Any) -> None:
        val.kind = kind
        setattr(val.of, attr, value)

    return fill


def _set_bytes(val: Any, data: bytes) -> None:
    """list<u8> built in one copy: a C value array laid out with a slice assignment."""
    items = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(items, len(data))
    if data:
        raw = bytearray(len(data) * _VAL_SIZE)
        raw[0::_VAL_SIZE] = bytes([_U8]) * len(data)
        raw[_VAL_OF::_VAL_SIZE] = data
        ctypes.memmove(items.data, bytes(raw), len(raw))
    val.kind = K.WASMTIME_COMPONENT_LIST
    val.of.list = items


def _set_interval(val: Any, value: Any) -> None:
    fields = set_record(val, ("months", "days", "microseconds"))
    for i, (kind, attr) in enumerate(((K.WASMTIME_COMPONENT_S32, "s32"),) * 2):
        fields[i].val.kind = kind
        setattr(fields[i].val.of, attr, value[i])
    fields[2].val.kind = K.WASMTIME_COMPONENT_S64
    fields[2].val.of.s64 = value[2]


def _set_uuid(val: Any, pair: tuple[int, int]) -> None:
    t = ffi.wasmtime_component_valtuple_t()
    ffi.wasmtime_component_valtuple_new_uninit(t, 2)
    for i in range(2):
        t.data[i].kind = K.WASMTIME_COMPONENT_U64
        t.data[i].of.u64 = pair[i]
    val.kind = K.WASMTIME_COMPONENT_TUPLE
    val.of.tuple = t


_S64 = _set_scalar(K.WASMTIME_COMPONENT_S64, "s64")
_WRITERS: dict[str, Callable[[Any, Any], None]] = {
    "boolean": _set_scalar(K.WASMTIME_COMPONENT_BOOL, "boolean"),
    "int2": _set_scalar(K.WASMTIME_COMPONENT_S16, "s16"),
    "int4": _set_scalar(K.WASMTIME_COMPONENT_S32, "s32"),
    "int8": _S64,
    "float4": _set_scalar(K.WASMTIME_COMPONENT_F32, "f32"),
    "float8": _set_scalar(K.WASMTIME_COMPONENT_F64, "f64"),
    "text": _set_str,
    "numeric": _set_str,
    "jsonb": _set_str,
    "bytea": _set_bytes,
    "timestamptz": _S64,
    "timestamp": _S64,
    "time": _S64,
    "date": _set_scalar(K.WASMTIME_COMPONENT_S32, "s32"),
    "oid": _set_scalar(K.WASMTIME_COMPONENT_U32, "u32"),
    "interval": _set_interval,
    "uuid": _set_uuid,
}


def _blank(val: Any) -> None:
    val.kind = K.WASMTIME_COMPONENT_BOOL
    val.of.boolean = False


def _set_array(val: Any, element: str, values: list[Any]) -> None:
    write = _WRITERS[element]
    out = _new_list(val, len(values))
    for i, item in enumerate(values):
        out[i].kind = K.WASMTIME_COMPONENT_OPTION
        if item is not None:
            out[i].of.option = _boxed(functools.partial(_fill, write, item))


def _fill(write: Callable[[Any, Any], None], value: Any, val: Any) -> None:
    write(val, value)


def set_variant(val: Any, case: str, fill: Callable[[Any], None] | None) -> None:
    name = _CASE_NAMES.get(case) or case.encode()
    val.kind = K.WASMTIME_COMPONENT_VARIANT
    _vec_new(ctypes.addressof(val) + _VAL_OF, len(name), name)
    val.of.variant.val = _boxed(fill) if fill is not None else None


_CASE_NAMES = {case: case.encode() for case in [*_WRITERS, *db_values.ARRAY_ELEMENTS, "null"]}
_COLUMN_FIELDS = (b"name", b"value")


def set_pg_value(val: Any, case: str | None, value: Any) -> None:
    if case is None or value is None:
        set_variant(val, "null", None)
        return
    element = db_values.ARRAY_ELEMENTS.get(case)
    if element is not None:
        set_variant(val, case, lambda v: _set_array(v, element, value))
    else:
        write = _WRITERS[case]
        set_variant(val, case, lambda v: write(v, value))


def set_rows(val: Any, columns: list[tuple[str, str | None]], rows: list[list[Any]]) -> None:
    """list<row>: row = record { columns: list<column { name, value: pg-value }> }."""
    out = _new_list(val, len(rows))
    names = [name.encode() for name, _ in columns]
    width = len(columns)
    for r, row in enumerate(rows):
        cells = _new_list(_field(_new_record(out[r], (b"columns",)), 0), width)
        for c in range(width):
            base = _new_record(cells[c], _COLUMN_FIELDS)
            name = names[c]
            name_val = _field(base, 0)
            name_val.kind = K.WASMTIME_COMPONENT_STRING
            _vec_new(ctypes.addressof(name_val) + _VAL_OF, len(name), name)
            set_pg_value(_field(base, 1), columns[c][1], row[c])


def set_error(val: Any, failure: DbFailure) -> None:
    if failure.kind == "constraint-violation":
        name, message = failure.payload

        def fill(v: Any) -> None:
            fields = set_record(v, ("name", "message"))
            set_string(fields[0].val, name)
            set_string(fields[1].val, message)

        set_variant(val, failure.kind, fill)
    else:
        text = str(failure.payload)
        set_variant(val, failure.kind, lambda v: set_string(v, text))


def set_result(val: Any, ok: bool, fill: Callable[[Any], None] | None) -> None:
    val.kind = K.WASMTIME_COMPONENT_RESULT
    val.of.result.is_ok = ok
    val.of.result.val = boxed(fill) if fill is not None else None


def set_u64(val: Any, count: int) -> None:
    val.kind = K.WASMTIME_COMPONENT_U64
    val.of.u64 = count

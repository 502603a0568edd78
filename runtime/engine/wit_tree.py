"""Component-model values as plain Python trees, read and written through wasmtime's C API.

For host functions whose arguments are nested records, lists and variants (the LLM
capability's requests) and that are called per network round trip, not per row: reading by
the values' own kinds is short and needs no type walk. Read: string -> str, bool, integers,
floats, list -> list, record -> dict by field name, variant -> (case, payload or None), enum ->
its case name, option -> value or None, tuple -> tuple. Written: str, bool, int (as u32: the
only integer type the callers use), list, dict (a record, fields in order), and the wrappers
below for variants, options, results and owned host resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi

from runtime.engine.host_abi import set_own_resource
from runtime.engine.wit_values import boxed, set_record, set_string

_K = {
    name: getattr(ffi, f"WASMTIME_COMPONENT_{name}").value
    for name in [
        "BOOL",
        "S8",
        "U8",
        "S16",
        "U16",
        "S32",
        "U32",
        "S64",
        "U64",
        "F32",
        "F64",
        "CHAR",
        "STRING",
        "LIST",
        "RECORD",
        "TUPLE",
        "VARIANT",
        "ENUM",
        "OPTION",
        "RESULT",
        "FLAGS",
        "RESOURCE",
    ]
}
_INTS = {_K[n]: n.lower() for n in ("S8", "U8", "S16", "U16", "S32", "U32", "S64", "U64")}


def read(val: Any) -> Any:
    """The Python tree of one C value (which stays owned by the caller)."""
    kind = val.kind
    if kind == _K["STRING"]:
        return ffi.to_str(val.of.string)
    if kind == _K["BOOL"]:
        return bool(val.of.boolean)
    if kind in _INTS:
        return int(getattr(val.of, _INTS[kind]))
    if kind == _K["F32"]:
        return float(val.of.f32)
    if kind == _K["F64"]:
        return float(val.of.f64)
    if kind == _K["LIST"]:
        items = val.of.list
        return [read(items.data[i]) for i in range(items.size)]
    if kind == _K["RECORD"]:
        fields = val.of.record
        return {
            ffi.to_str(fields.data[i].name): read(fields.data[i].val) for i in range(fields.size)
        }
    if kind == _K["TUPLE"]:
        items = val.of.tuple
        return tuple(read(items.data[i]) for i in range(items.size))
    if kind == _K["VARIANT"]:
        variant = val.of.variant
        payload = read(variant.val.contents) if variant.val else None
        return (ffi.to_str(variant.discriminant), payload)
    if kind == _K["ENUM"]:
        return ffi.to_str(val.of.enumeration)
    if kind == _K["OPTION"]:
        return read(val.of.option.contents) if val.of.option else None
    raise WasmtimeError(f"unexpected value kind {kind}")


@dataclass(frozen=True)
class Variant:
    case: str
    payload: Any = None  # None: a case without payload


@dataclass(frozen=True)
class Option:
    value: Any = None  # None: `none`


@dataclass(frozen=True)
class Result:
    ok: bool
    value: Any = None


@dataclass(frozen=True)
class Own:
    """A new owned handle of a host resource: our type id and the rep we chose."""

    rep: int
    resource_type: int


def write(context: Any, out: Any, tree: Any) -> None:
    """Set the C value `out` (a blank slot) to `tree`; `context` makes resource handles."""
    if isinstance(tree, str):
        set_string(out, tree)
    elif isinstance(tree, bool):
        out.kind = ffi.WASMTIME_COMPONENT_BOOL
        out.of.boolean = tree
    elif isinstance(tree, int):
        out.kind = ffi.WASMTIME_COMPONENT_U32
        out.of.u32 = tree
    elif isinstance(tree, list):
        _write_list(context, out, tree)
    elif isinstance(tree, dict):
        fields = set_record(out, tuple(tree))
        for i, value in enumerate(tree.values()):
            write(context, fields[i].val, value)
    elif isinstance(tree, Variant):
        payload = tree.payload
        out.kind = ffi.WASMTIME_COMPONENT_VARIANT
        out.of.variant.discriminant = ffi.str_to_capi(tree.case)
        out.of.variant.val = (
            None if payload is None else boxed(lambda v: write(context, v, payload))
        )
    elif isinstance(tree, Option):
        value = tree.value
        out.kind = ffi.WASMTIME_COMPONENT_OPTION
        out.of.option = None if value is None else boxed(lambda v: write(context, v, value))
    elif isinstance(tree, Result):
        result = tree
        out.kind = ffi.WASMTIME_COMPONENT_RESULT
        out.of.result.is_ok = result.ok
        out.of.result.val = (
            None if result.value is None else boxed(lambda v: write(context, v, result.value))
        )
    elif isinstance(tree, Own):
        set_own_resource(context, out, tree.rep, tree.resource_type)
    else:
        raise TypeError(f"cannot write a {type(tree).__name__} as a component value")


def _write_list(context: Any, out: Any, items: list[Any]) -> None:
    values = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(values, len(items))
    for i in range(len(items)):
        values.data[i].kind = ffi.WASMTIME_COMPONENT_BOOL  # blank until set: safe to delete
        values.data[i].of.boolean = False
    out.kind = ffi.WASMTIME_COMPONENT_LIST
    out.of.list = values  # owned by out from here
    data = out.of.list.data
    for i, item in enumerate(items):
        write(context, data[i], item)

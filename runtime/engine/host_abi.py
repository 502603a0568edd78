"""Host functions registered as direct C callbacks, for capability bindings.

wasmtime-py's `LinkerInstance.add_func` asks the C API for the function's type and walks it to
convert every argument and result on every call (see send_import.py): measured from a guest,
a span open+close (two calls) cost ~150 us that way, most of it type walking. A capability
whose WIT signatures are fixed reads its C arguments and writes its results here instead.

An implementation gets the store context, the argument values and the result slots. Any
exception becomes a WasmtimeError, so the guest traps and wasmtime-py's module-global "last
exception" (unsafe with several threads in wasm) is never used. Arguments are freed after it
returns, as wasmtime-py does.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi
from wasmtime.component._enter import catch_exceptions

# (context, args, nargs, results) -> None
DirectImpl = Callable[[Any, Any, int, Any], None]

_impls: dict[int, DirectImpl] = {}
_ids = itertools.count(1)


def add_direct_func(instance: Any, name: str, impl: DirectImpl) -> None:
    """Define `name` in a LinkerInstance, served by impl."""
    key = next(_ids)
    _impls[key] = impl
    raw = name.encode()
    err = ffi.wasmtime_component_linker_instance_add_func(
        instance.ptr(), ctypes.create_string_buffer(raw), len(raw), _direct, key, _finalize
    )
    if err:
        _impls.pop(key, None)
        raise WasmtimeError._from_ptr(err)


@ffi.wasmtime_component_func_callback_t
def _direct(key, context, _ty, args, nargs, results, _nresults):  # type: ignore[no-untyped-def]
    def run(_store: Any) -> None:
        try:
            _impls[key or 0](context, args, nargs, results)
        except WasmtimeError:
            raise
        except Exception as exc:
            raise WasmtimeError(f"host function failed: {type(exc).__name__}: {exc}") from None
        finally:
            for i in range(nargs):
                _free_arg(args[i])

    return catch_exceptions(context, run)


def _free_arg(val: Any) -> None:
    """Free one argument, then leave a plain bool in its slot, as wasmtime-py's conversions
    do: wasmtime drops the argument slots again after the callback, and a freed resource
    handle left in place is freed twice (glibc aborts: "double free", seen on the first
    borrow<active-span> argument)."""
    ffi.wasmtime_component_val_delete(ctypes.byref(val))
    val.kind = ffi.WASMTIME_COMPONENT_BOOL
    val.of.boolean = False


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def _finalize(key):  # type: ignore[no-untyped-def]
    _impls.pop(key or 0, None)


# ---- values ---------------------------------------------------------------------------------


def read_str(val: Any) -> str:
    if val.kind != ffi.WASMTIME_COMPONENT_STRING.value:
        raise WasmtimeError("expected a string")
    return ffi.to_str(val.of.string)


_SCALARS: dict[int, Callable[[Any], Any]] = {
    ffi.WASMTIME_COMPONENT_STRING.value: lambda v: ffi.to_str(v.of.string),
    ffi.WASMTIME_COMPONENT_BOOL.value: lambda v: bool(v.of.boolean),
    ffi.WASMTIME_COMPONENT_S64.value: lambda v: int(v.of.s64),
    ffi.WASMTIME_COMPONENT_F64.value: lambda v: float(v.of.f64),
}


def read_variant_payload(val: Any) -> Any:
    """The payload of a variant whose cases each carry a string, bool, s64 or f64 (the case
    name is not needed: the payload's kind tells them apart)."""
    if val.kind != ffi.WASMTIME_COMPONENT_VARIANT.value or not val.of.variant.val:
        raise WasmtimeError("expected a variant with a payload")
    payload = val.of.variant.val.contents
    read = _SCALARS.get(payload.kind)
    if read is None:
        raise WasmtimeError(f"unexpected variant payload kind {payload.kind}")
    return read(payload)


def read_pairs(val: Any, limit: int) -> list[tuple[str, Any]]:
    """list<tuple<string, variant>> (at most `limit` items read)."""
    if val.kind != ffi.WASMTIME_COMPONENT_LIST.value:
        raise WasmtimeError("expected a list")
    items = val.of.list
    out = []
    for i in range(min(items.size, limit)):
        pair = items.data[i].of.tuple.data
        out.append((read_str(pair[0]), read_variant_payload(pair[1])))
    return out


def resource_rep(context: Any, val: Any) -> int:
    """The rep of a host resource passed in (own or borrow)."""
    if val.kind != ffi.WASMTIME_COMPONENT_RESOURCE.value:
        raise WasmtimeError("expected a resource")
    host = ctypes.POINTER(ffi.wasmtime_component_resource_host_t)()
    err = ffi.wasmtime_component_resource_any_to_host(context, val.of.resource, ctypes.byref(host))
    if err:
        raise WasmtimeError._from_ptr(err)
    try:
        return int(ffi.wasmtime_component_resource_host_rep(host))
    finally:
        ffi.wasmtime_component_resource_host_delete(host)


def set_own_resource(context: Any, out: Any, rep: int, resource_type: int) -> None:
    """Write a new owned host resource (rep, of our type id resource_type) into out."""
    host = ffi.wasmtime_component_resource_host_new(True, rep, resource_type)
    any_ptr = ctypes.POINTER(ffi.wasmtime_component_resource_any_t)()
    try:
        err = ffi.wasmtime_component_resource_host_to_any(context, host, ctypes.byref(any_ptr))
    finally:
        ffi.wasmtime_component_resource_host_delete(host)
    if err:
        raise WasmtimeError._from_ptr(err)
    out.kind = ffi.WASMTIME_COMPONENT_RESOURCE
    out.of.resource = any_ptr

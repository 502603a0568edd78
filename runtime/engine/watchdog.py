"""A check that runs on every epoch tick (10 ms) while a guest runs, on the guest's own thread.

wasmtime-py only offers a fixed epoch deadline that traps; its C API also takes a callback
(`wasmtime_store_epoch_deadline_callback`) that wasmtime calls each time the deadline is
reached, which may trap with a message or extend the deadline. The engine uses it to stop a
guest at its request deadline or as soon as it writes past its quota, and to notice a request
that runs long. Cost: one Python call (~10 us with the quota check) per tick a guest runs
across; a 2 ms request crosses one about every fifth time.
"""

from __future__ import annotations

import ctypes
import itertools
from collections.abc import Callable
from typing import Any

from wasmtime import Store, WasmtimeError
from wasmtime import _ffi as ffi

# Returns None to let the guest run one more tick, or the reason to stop it (a trap).
Check = Callable[[], str | None]

_CONTINUE = 0  # WASMTIME_UPDATE_DEADLINE_CONTINUE: keep running on this thread
_checks: dict[int, Check] = {}
_ids = itertools.count(1)


def watch(store: Store, check: Check) -> None:
    """Run check on every tick while store's guest runs; set before instantiating."""
    key = next(_ids)
    _checks[key] = check
    ffi.wasmtime_store_epoch_deadline_callback(store.ptr(), _on_deadline, key, _forget)
    store.set_epoch_deadline(1)


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.POINTER(ffi.wasmtime_context_t),
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)


@_CALLBACK  # type: ignore[untyped-decorator]
def _on_deadline(_context: Any, key: Any, delta: Any, kind: Any) -> int:
    try:
        reason = _checks[key or 0]()
    except Exception as exc:  # a host bug: stop this guest rather than let it run unchecked
        reason = f"engine error in the guest's watchdog: {type(exc).__name__}: {exc}"
    if reason is None:
        delta[0] = 1
        kind[0] = _CONTINUE
        return 0
    pointer: int = ctypes.cast(WasmtimeError(reason)._consume(), ctypes.c_void_p).value or 0
    return pointer


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # type: ignore[untyped-decorator]
def _forget(key: Any) -> None:
    _checks.pop(key or 0, None)

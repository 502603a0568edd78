"""The guest's stdin as an in-memory pipe (wasmtime's C API has it; wasmtime-py does not wrap it).

wasmtime-py offers `WasiConfig.stdin_file`, but WASI reads a file on wasmtime's blocking thread
pool: each read is a hand-off to another thread and back. Measured per call, in-process: 100 B
1.33 -> 0.96 ms, 1 MiB 4.2 -> 3.1 ms. An in-memory pipe is read on the calling thread.
"""

from __future__ import annotations

import ctypes
import mmap

from wasmtime import WasiConfig
from wasmtime import _ffi as ffi

Buffer = bytes | mmap.mmap


def set_stdin_bytes(wasi: WasiConfig, data: Buffer) -> None:
    """Make a copy of data the guest's stdin (empty data: stdin stays at end-of-file)."""
    size = len(data)
    if size == 0:
        return
    vec = ffi.wasm_byte_vec_t()
    ffi.wasm_byte_vec_new_uninitialized(ctypes.byref(vec), size)
    if isinstance(data, bytes):
        ctypes.memmove(vec.data, data, size)
    else:  # a writable (ACCESS_COPY) map; the view must be gone before the map is closed
        view = (ctypes.c_char * size).from_buffer(data)
        ctypes.memmove(vec.data, view, size)
        del view
    ffi.wasi_config_set_stdin_bytes(wasi.ptr(), ctypes.byref(vec))  # takes the vector's contents

"""The one wasmtime Config every engine process uses, and the fingerprint the cache keys on."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version

import wasmtime

# Pooling allocator: instances live in pre-reserved slots, reused across requests. Sized for
# a worker's 16 request threads (a Python component holds a few core instances and memories);
# every memory slot reserves address space up front (~8 GiB with guards), hence the modest
# totals.
POOL = {
    "total_component_instances": 32,
    "total_core_instances": 512,
    "total_memories": 96,
    "total_tables": 192,
    "max_memory_size": 4 << 30,
}
# A precompiled artifact only loads into an engine with the same wasmtime version and Config:
# every flag set below is part of the cache key. (How much memory stays resident is a runtime
# choice, not a compile setting, and is left out.)
FLAGS: dict[str, object] = {
    "epoch_interruption": True,
    "cranelift_opt_level": "speed",
    "pooling": POOL,
}
EPOCH_TICK_SECS = 0.01
# Dropped instances' memory is given back to the kernel (madvise) in batches of this many
# slots instead of one call per request: fewer syscalls and TLB flushes. Measured in-process
# (100 B echo, alternating engines): -0.05 to -0.1 ms CPU per raw request, -0.15 to -0.2 ms
# per protobuf request, and the drop after a response went from ~0.11 to ~0.025 ms. A full
# pool flushes the pending batch before it fails an allocation, so no capacity is lost; at
# most this many instances' dirtied pages stay committed meanwhile (a few MiB). A runtime
# setting, not a compile one: not part of the cache key.
DECOMMIT_BATCH = 8
# A pooled instance's tables stay resident up to this size when it is dropped, instead of
# being decommitted: a Python guest's funcref table (~5,700 entries) is then refilled
# without page faults (measured 13 -> 0 faults per instantiation, -0.04 ms).
TABLE_KEEP_RESIDENT = 64 << 10


def make_config(resident_bytes: int = 0) -> wasmtime.Config:
    """resident_bytes: how much of a pooled instance's memory is kept resident between requests.

    0 (the default): a dropped instance's memory is unmapped back to the component's
    copy-on-write image, and the next request pays a page fault for each page it writes (a
    Python guest: ~190 faults for a trivial handler, ~450 for a protobuf echo; 2-3 us each).
    With N > 0, the first N bytes are instead restored by copying the image back when the
    instance is dropped (16 MiB covers a Python guest's snapshot): the call itself no longer
    faults, and the worker drops the instance after the response is sent, so ~1 ms leaves the
    critical path; but the copy costs more CPU than the faults it saves (measured +15-25% CPU
    per small request), so it trades throughput for latency.
    """
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.cranelift_opt_level = "speed"
    _set_pooling(config, resident_bytes)
    return config


def _set_pooling(config: wasmtime.Config, resident_bytes: int) -> None:
    """wasmtime-py has no Config API for the pooling allocator: use its C API bindings."""
    from wasmtime import _ffi as ffi

    pooling = ffi.wasmtime_pooling_allocation_config_new()
    try:
        for name, value in POOL.items():
            getattr(ffi, f"wasmtime_pooling_allocation_config_{name}_set")(pooling, value)
        ffi.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(
            pooling, resident_bytes
        )
        ffi.wasmtime_pooling_allocation_config_decommit_batch_size_set(pooling, DECOMMIT_BATCH)
        ffi.wasmtime_pooling_allocation_config_table_keep_resident_set(pooling, TABLE_KEEP_RESIDENT)
        ffi.wasmtime_pooling_allocation_strategy_set(config.ptr(), pooling)
    finally:
        ffi.wasmtime_pooling_allocation_config_delete(pooling)


def wasmtime_version() -> str:
    return version("wasmtime")


def fingerprint() -> str:
    """wasmtime version + flags, as stable text."""
    return json.dumps({"wasmtime": wasmtime_version(), **FLAGS}, sort_keys=True)


def cache_key(component_sha256: str) -> str:
    return hashlib.sha256(f"{component_sha256}\0{fingerprint()}".encode()).hexdigest()[:40]

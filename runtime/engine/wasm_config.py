"""The one wasmtime Config every engine process uses, and the fingerprint the cache keys on."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version

import wasmtime

# Pooling allocator: instances live in pre-reserved slots. With `keep_resident` the first
# 16 MiB of a slot (the snapshot of a Python guest fits) are reset by copying the image back
# when an instance is dropped, instead of being unmapped: the next request then writes to
# resident pages instead of taking ~450 copy-on-write page faults (~1 ms) inside the call. The
# reset costs about as much, but the worker runs it after the response has been sent.
POOL = {
    "total_component_instances": 64,
    "total_core_instances": 1024,
    "total_memories": 256,
    "total_tables": 512,
    "max_memory_size": 4 << 30,
    "linear_memory_keep_resident": 16 << 20,
    "table_keep_resident": 1 << 20,
}
# A precompiled artifact only loads into an engine with the same wasmtime version and Config:
# every flag set below is part of the cache key.
FLAGS: dict[str, object] = {
    "epoch_interruption": True,
    "cranelift_opt_level": "speed",
    "pooling": POOL,
}
EPOCH_TICK_SECS = 0.01


def make_config() -> wasmtime.Config:
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.cranelift_opt_level = "speed"
    _set_pooling(config)
    return config


def _set_pooling(config: wasmtime.Config) -> None:
    """wasmtime-py has no Config API for the pooling allocator: use its C API bindings."""
    from wasmtime import _ffi as ffi

    pooling = ffi.wasmtime_pooling_allocation_config_new()
    try:
        for name, value in POOL.items():
            getattr(ffi, f"wasmtime_pooling_allocation_config_{name}_set")(pooling, value)
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

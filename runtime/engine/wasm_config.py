"""The one wasmtime Config every engine process uses, and the fingerprint the cache keys on."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version

import wasmtime

# A precompiled artifact only loads into an engine with the same wasmtime version and Config:
# every flag set below is part of the cache key.
FLAGS: dict[str, object] = {"epoch_interruption": True, "cranelift_opt_level": "speed"}
EPOCH_TICK_SECS = 0.01


def make_config() -> wasmtime.Config:
    config = wasmtime.Config()
    config.epoch_interruption = True
    config.cranelift_opt_level = "speed"
    return config


def wasmtime_version() -> str:
    return version("wasmtime")


def fingerprint() -> str:
    """wasmtime version + flags, as stable text."""
    return json.dumps({"wasmtime": wasmtime_version(), **FLAGS}, sort_keys=True)


def cache_key(component_sha256: str) -> str:
    return hashlib.sha256(f"{component_sha256}\0{fingerprint()}".encode()).hexdigest()[:40]

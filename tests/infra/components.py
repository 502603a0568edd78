"""Real WASM components for the tests: the examples and the test guests, built once per
content and precompiled into a shared engine cache (both cached by content hash)."""

from __future__ import annotations

import fcntl
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.infra.process import cache_dir

REPO = Path(__file__).resolve().parents[2]
ECHO = REPO / "examples" / "echo"
ENGINE_GUESTS = REPO / "tests" / "integration" / "engine" / "guests"
SHOP = REPO / "examples" / "shop"
SOURCES = {
    "echo": ECHO / "echo",
    "caller": ECHO / "caller",
    "testkit": ENGINE_GUESTS / "testkit",
    "hostile": ENGINE_GUESTS / "hostile",
    "with_db": ENGINE_GUESTS / "with_db",
    "with_blob": ENGINE_GUESTS / "with_blob",
    "shop_inventory": SHOP / "inventory",
    "shop_assistant": SHOP / "assistant",
    "shop_client": SHOP / "client",
    "worker": ENGINE_GUESTS / "worker",
}


def compiled_cache_dir() -> Path:
    """The engine compile cache the tests share (pass it as an engine's cache_dir)."""
    return cache_dir() / "components"


@pytest.fixture(scope="session")
def components() -> dict[str, Path]:
    """name -> .wasm, built and precompiled into compiled_cache_dir().

    A cache miss costs ~15 s to build and ~6 s to compile per component; a hit is instant,
    so engines in the tests start in about a second.
    """
    from runtime.engine.component_cache import ComponentCache
    from wrctl.build.cached import build_cached

    compiled = ComponentCache(compiled_cache_dir())

    def prepare(path: Path) -> Path:
        wasm = build_cached(path)
        compiled.ensure(wasm)
        return wasm

    # Parallel test workers (pytest-xdist) would each build the same components at once:
    # the first builds, the others wait here and then find everything cached.
    lock_path = cache_dir() / "components.lock"
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with ThreadPoolExecutor(2) as pool:
            futures = {name: pool.submit(prepare, path) for name, path in SOURCES.items()}
            return {name: f.result() for name, f in futures.items()}

"""The precompile cache: reused when intact, detected and rebuilt when corrupt."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.engine.component_cache import ComponentCache, file_sha256
from tests.infra.process import cache_dir

pytestmark = pytest.mark.slow


# The smallest valid component: compiling it is quick, and the cache treats every component alike.
EMPTY_COMPONENT = b"\x00asm\x0d\x00\x01\x00"


def test_corrupted_entry_is_detected_and_rebuilt(tmp_path: Path) -> None:
    wasm = tmp_path / "empty.wasm"
    wasm.write_bytes(EMPTY_COMPONENT)
    cache = ComponentCache(tmp_path / "cache")
    first = cache.ensure(wasm)
    assert first.compiled
    entry, checksum = cache.paths(file_sha256(wasm))
    assert first.artifact == entry
    good = entry.read_bytes()

    reused = cache.ensure(wasm)
    assert not reused.compiled
    assert reused.digest == f"sha256:{file_sha256(wasm)}"

    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0xFF
    entry.write_bytes(bytes(corrupt))
    rebuilt = cache.ensure(wasm)
    assert rebuilt.compiled
    assert file_sha256(entry) == checksum.read_text().strip()
    assert entry.read_bytes() == good

    checksum.unlink()  # a torn write that never got its checksum
    assert cache.ensure(wasm).compiled


def test_warm_entry_of_a_real_component_loads_fast(components) -> None:  # type: ignore[no-untyped-def]
    cache = ComponentCache(cache_dir() / "components")
    cache.ensure(components["echo"])  # compiled at most once per cache
    warm = cache.ensure(components["echo"])
    assert not warm.compiled
    assert warm.seconds < 1.0


def test_missing_component_is_a_clear_error(tmp_path: Path) -> None:
    from runtime.engine.component_cache import CompileError

    with pytest.raises(CompileError, match=r"nope\.wasm: component file not found"):
        ComponentCache(tmp_path).ensure(tmp_path / "nope.wasm")


def test_non_component_is_a_clear_error(tmp_path: Path) -> None:
    from runtime.engine.component_cache import CompileError

    bogus = tmp_path / "bogus.wasm"
    bogus.write_bytes(b"not wasm at all")
    with pytest.raises(CompileError, match="not a valid WASM component"):
        ComponentCache(tmp_path / "cache").ensure(bogus)

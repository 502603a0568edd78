"""The precompile cache: reused when intact, detected and rebuilt when corrupt."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runtime.engine.component_cache import ComponentCache, file_sha256
from tests.infra.process import cache_dir

pytestmark = pytest.mark.slow


def test_corrupted_entry_is_detected_and_rebuilt(components, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wasm = components["echo"]
    shared = ComponentCache(cache_dir() / "components")
    good = shared.ensure(wasm)  # compiled at most once per test run
    cache = ComponentCache(tmp_path)
    entry, checksum = cache.paths(file_sha256(wasm))
    shutil.copy(good.artifact, entry)
    shutil.copy(good.artifact.with_name(good.artifact.name + ".sha256"), checksum)

    reused = cache.ensure(wasm)
    assert not reused.compiled
    assert reused.digest == f"sha256:{file_sha256(wasm)}"

    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    rebuilt = cache.ensure(wasm)
    assert rebuilt.compiled
    assert file_sha256(entry) == checksum.read_text().strip()
    assert entry.read_bytes() != bytes(data)


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

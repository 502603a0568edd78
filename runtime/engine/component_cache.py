"""On-disk cache of precompiled components, keyed by (component sha256, wasmtime, config flags).

Each entry `<key>.cwasm` has a `<key>.cwasm.sha256` beside it; an entry whose bytes do not
match it (a torn write, a flipped bit) is detected at load and rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from runtime.engine.wasm_config import cache_key

log = logging.getLogger(__name__)


class CompileError(Exception):
    """A component file that is missing or that wasmtime cannot compile."""


@dataclass(frozen=True)
class CachedComponent:
    source: Path
    digest: str  # "sha256:<hex>" of the .wasm
    artifact: Path
    compiled: bool  # False when a verified cache entry was reused
    seconds: float


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class ComponentCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def paths(self, wasm_sha256: str) -> tuple[Path, Path]:
        entry = self.directory / f"{cache_key(wasm_sha256)}.cwasm"
        return entry, entry.with_name(entry.name + ".sha256")

    def _verified(self, entry: Path, checksum: Path) -> bool:
        if not entry.is_file():
            return False
        try:
            expected = checksum.read_text().strip()
        except FileNotFoundError:
            expected = ""
        if expected and file_sha256(entry) == expected:
            return True
        log.warning("precompiled cache entry is corrupt; rebuilding", extra={"entry": str(entry)})
        return False

    def ensure(self, wasm: Path) -> CachedComponent:
        """The verified precompiled artifact for wasm, compiling it (in a subprocess) if needed."""
        started = time.monotonic()
        if not wasm.is_file():
            raise CompileError(f"{wasm}: component file not found")
        wasm_sha = file_sha256(wasm)
        entry, checksum = self.paths(wasm_sha)
        compiled = False
        if not self._verified(entry, checksum):
            self.directory.mkdir(parents=True, exist_ok=True)
            self._compile(wasm, entry, checksum)
            compiled = True
        return CachedComponent(
            wasm, f"sha256:{wasm_sha}", entry, compiled, time.monotonic() - started
        )

    def _compile(self, wasm: Path, entry: Path, checksum: Path) -> None:
        tmp = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "runtime.engine.precompile", str(wasm), str(tmp)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise CompileError(
                    proc.stderr.strip().splitlines()[-1]
                    if proc.stderr
                    else f"{wasm}: precompile failed (exit {proc.returncode})"
                )
            digest = file_sha256(tmp)
            tmp.replace(entry)
            _write_atomic(checksum, (digest + "\n").encode())
        finally:
            tmp.unlink(missing_ok=True)

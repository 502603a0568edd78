"""Build a Python guest directory into a wruntime WASM component (`wrctl build`)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from runtime.wire import Capability
from wrctl.build.componentize import run_componentize
from wrctl.build.spec import BuildError, load_spec
from wrctl.build.stage import guest_libs, world_for

__all__ = ["BuildError", "BuildResult", "build_component"]

ENTRY = "wr_entry"
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    output: Path
    size: int
    seconds: float


def _write_entry(work: Path, module: str) -> Path:
    entry_dir = work / "entry"
    entry_dir.mkdir()
    (entry_dir / f"{ENTRY}.py").write_text(
        f'"""Generated entry point: the guest module, then the wruntime handler export."""\n'
        f"import {module}  # noqa: F401  (registers the routes)\n"
        f"from wr_sdk._export import Handler  # noqa: F401\n",
        encoding="utf-8",
    )
    return entry_dir


def build_component(
    guest_dir: Path,
    output: Path,
    *,
    protos: list[Path] | None = None,
    capabilities: list[Capability] | None = None,
    progress: Progress | None = None,
) -> BuildResult:
    """Build guest_dir into the component output (written atomically).

    protos and capabilities add to those in guest_dir/guest.toml.
    """
    from wr_sdk.codegen import ProtoError, generate_guest_code

    say = progress or (lambda _msg: None)
    started = time.monotonic()
    guest_dir = guest_dir.resolve()
    spec = load_spec(guest_dir)
    all_protos = [*spec.protos, *(p.resolve() for p in protos or [])]
    caps = [*spec.capabilities, *(capabilities or [])]
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wr-build-") as tmp:
        work = Path(tmp)
        gen = work / "gen"
        gen.mkdir()
        for proto in all_protos:
            say(f"generating code for {proto.name}")
            try:
                generate_guest_code(proto, gen)
            except ProtoError as exc:
                raise BuildError(str(exc)) from None
        say("staging wr_sdk and protobuf")
        libs = guest_libs()
        wit, world = world_for(caps, work)
        entry_dir = _write_entry(work, spec.module)
        say(f"componentize-py (world {world})")
        partial = output.with_name(f".{output.name}.{os.getpid()}.tmp")
        try:
            run_componentize(wit, world, ENTRY, [entry_dir, guest_dir, gen, libs], partial)
            os.replace(partial, output)
        finally:
            partial.unlink(missing_ok=True)
    return BuildResult(output, output.stat().st_size, time.monotonic() - started)

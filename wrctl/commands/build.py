"""`wrctl build`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from runtime.wire import CAPABILITIES
from wrctl.build import BuildError, build_component
from wrctl.console import err
from wrctl.errors import WrctlError
from wrctl.fsutil import write_atomic


def run_build(
    guest_dir: Path,
    output: Path | None,
    protos: list[Path],
    capabilities: list[str],
    force: bool = False,
) -> None:
    from wrctl.build.cached import build_key

    target = output or guest_dir.with_suffix(".wasm")
    unknown = sorted(set(capabilities) - set(CAPABILITIES))
    if unknown:
        raise WrctlError(
            f"--capability {unknown[0]!r} is not a capability (expected {', '.join(CAPABILITIES)})"
        )
    # componentize-py's output differs from build to build, so an unchanged guest is not
    # rebuilt: its digest, and so `wrctl plan`, stays the same.
    try:
        key = build_key(guest_dir, protos, cast("Any", capabilities))
    except BuildError as exc:
        raise WrctlError(str(exc)) from None
    stamp = target.with_name(f"{target.name}.inputs")
    if not force and target.is_file() and stamp.is_file() and stamp.read_text() == key:
        err.print(f"[green]up to date[/] {target} (inputs unchanged; --force rebuilds)")
        return
    try:
        with err.status(f"building {guest_dir}") as status:
            result = build_component(
                guest_dir,
                target,
                protos=protos,
                capabilities=cast("Any", capabilities),
                progress=lambda step: status.update(f"building {guest_dir}: {step}"),
            )
    except BuildError as exc:
        raise WrctlError(str(exc)) from None
    write_atomic(stamp, key.encode())
    err.print(
        f"[green]built[/] {result.output} ({result.size / 1e6:.1f} MB, {result.seconds:.1f} s)"
    )

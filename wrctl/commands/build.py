"""`wrctl build`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from wrctl.build import BuildError, build_component
from wrctl.console import err
from wrctl.errors import WrctlError

CAPABILITIES = ("db", "blobstore", "tracing", "llm")


def run_build(
    guest_dir: Path, output: Path | None, protos: list[Path], capabilities: list[str]
) -> None:
    target = output or guest_dir.with_suffix(".wasm")
    unknown = sorted(set(capabilities) - set(CAPABILITIES))
    if unknown:
        raise WrctlError(
            f"--capability {unknown[0]!r} is not a capability (expected {', '.join(CAPABILITIES)})"
        )
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
    err.print(
        f"[green]built[/] {result.output} ({result.size / 1e6:.1f} MB, {result.seconds:.1f} s)"
    )

"""`wrctl build`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from runtime.wire import CAPABILITIES


def build(
    guest_dir: Annotated[
        Path, typer.Argument(help="Guest directory (app.py, optional guest.toml).")
    ],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Component to write [GUEST_DIR.wasm].")
    ] = None,
    proto: Annotated[
        list[Path] | None, typer.Option("--proto", help=".proto to generate typed code from.")
    ] = None,
    capability: Annotated[
        list[str] | None,
        typer.Option(
            "--capability", help=f"Host capability the guest imports: {', '.join(CAPABILITIES)}."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Rebuild even when the inputs are unchanged.")
    ] = False,
) -> None:
    """Build a Python guest directory into a WASM component."""
    from typing import Any, cast

    from wrctl.build import BuildError, build_component
    from wrctl.build.cached import build_key
    from wrctl.console import err
    from wrctl.errors import WrctlError
    from wrctl.fsutil import write_atomic

    capabilities = list(capability or [])
    for cap in capabilities:
        if cap not in CAPABILITIES:
            expected = ", ".join(CAPABILITIES)
            raise WrctlError(f"--capability: unknown capability {cap!r} (expected {expected})")
    protos = list(proto or [])
    target = output or guest_dir.with_suffix(".wasm")
    # componentize-py's output differs from build to build, so an unchanged guest is not
    # rebuilt: its digest, and so `wrctl plan`, stays the same.
    try:
        key = build_key(guest_dir, protos, cast("Any", capabilities))
        stamp = target.with_name(f"{target.name}.inputs")
        if not force and target.is_file() and stamp.is_file() and stamp.read_text() == key:
            err.print(f"[green]up to date[/] {target} (inputs unchanged; --force rebuilds)")
            return
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

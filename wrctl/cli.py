"""wrctl: the Typer app. Commands parse arguments, call the libraries and print; nothing more."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="wrctl",
    help="Build and deploy wruntime modules.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Build and deploy wruntime modules."""


@app.command()
def build(
    guest_dir: Annotated[
        Path, typer.Argument(help="guest directory (app.py, optional guest.toml)")
    ],
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="component to write [GUEST_DIR.wasm]")
    ] = None,
    proto: Annotated[
        list[Path] | None, typer.Option("--proto", help=".proto to generate typed code from")
    ] = None,
    capability: Annotated[
        list[str] | None,
        typer.Option(
            "--capability", help="host capability the guest imports: db, blobstore, tracing, llm"
        ),
    ] = None,
) -> None:
    """Build a Python guest directory into a WASM component."""
    from rich.console import Console

    from wrctl.build import BuildError, build_component

    console = Console(stderr=True)
    target = output or guest_dir.with_suffix(".wasm")
    caps = list(capability or [])
    unknown = sorted(set(caps) - {"db", "blobstore", "tracing", "llm"})
    if unknown:
        console.print(
            f"[red]error:[/] unknown capability {unknown[0]!r} "
            "(expected db, blobstore, tracing or llm)"
        )
        raise typer.Exit(2)
    try:
        with console.status(f"building {guest_dir}") as status:
            result = build_component(
                guest_dir,
                target,
                protos=list(proto or []),
                capabilities=caps,  # type: ignore[arg-type]
                progress=lambda step: status.update(f"building {guest_dir}: {step}"),
            )
    except BuildError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from None
    console.print(
        f"[green]built[/] {result.output} ({result.size / 1e6:.1f} MB, {result.seconds:.1f} s)"
    )


def main() -> None:
    app()

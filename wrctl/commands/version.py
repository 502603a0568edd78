"""`wrctl version`."""

from __future__ import annotations

import typer


def version() -> None:
    """Print wrctl's (and the runtime's) version."""
    from runtime.version import __version__

    typer.echo(f"wrctl {__version__}")

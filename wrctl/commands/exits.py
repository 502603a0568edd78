"""The one place wrctl's errors become messages and exit codes, as Terraform's do:

  0  ok (plan: no changes)
  1  any error, a usage error (bad option, unknown command) included
  2  plan --detailed-exitcode: changes present
130  interrupted (Ctrl-C)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from wrctl.errors import ConfigError, WrctlError

if TYPE_CHECKING:
    # typer vendors click; its Context is what TyperGroup methods take
    from typer._click.core import Context as ClickContext

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_INTERRUPTED = 0, 1, 2, 130


def print_error(message: str) -> None:
    from rich.text import Text

    from wrctl.console import err

    err.print(Text("Error: ", style="bold red") + Text(message))


def abort(message: str, code: int = EXIT_ERROR) -> NoReturn:
    print_error(message)
    raise typer.Exit(code)


@contextmanager
def exit_codes() -> Iterator[None]:
    """wrctl's errors -> their message and exit 1; usage errors -> exit 1 (click says 2,
    which Terraform and `--detailed-exitcode` keep for "changes present"); Ctrl-C -> 130."""
    try:
        yield
    except typer.TyperException as exc:  # click's usage errors, shown by typer
        exc.exit_code = EXIT_ERROR
        raise
    except ConfigError as exc:
        for problem in exc.problems:
            print_error(problem)
        raise typer.Exit(EXIT_ERROR) from None
    except WrctlError as exc:
        abort(str(exc))
    except KeyboardInterrupt:
        from wrctl.console import err

        err.print("[yellow]Interrupted.[/yellow]")
        raise typer.Exit(EXIT_INTERRUPTED) from None


class QuickHelp:
    """Gives `--help` the default a bool flag has (False, not None): typer then takes the
    value as it is instead of building a pydantic validator for it, which would make
    `wrctl version` import pydantic (~0.1 s)."""

    def get_help_option(self, ctx: ClickContext) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None and option.default is None:
            option.default = False
        return option


class WrctlCommand(QuickHelp, TyperCommand):
    """A wrctl command (see QuickHelp)."""


class WrctlGroup(QuickHelp, TyperGroup):
    """wrctl's command group: every command runs under `exit_codes`."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: ClickContext | None = None,
        **extra: Any,
    ) -> ClickContext:
        with exit_codes():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: ClickContext) -> Any:
        with exit_codes():
            return super().invoke(ctx)

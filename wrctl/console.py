"""All of wrctl's terminal output: styling, plans, results, progress bars and prompts.
(Exit codes: `wrctl.commands.exits`.)"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import typer
from rich.console import Console
from rich.text import Text

from wrctl.errors import WrctlError

_LINE_STYLES = {"+": "green", "-": "red", "~": "yellow", "-/+": "magenta", "#": "dim"}


class TargetResultLike(Protocol):
    target: str
    status: str
    detail: str


out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_plan(text: str) -> None:
    """Colour a rendered plan by each line's leading symbol."""
    for line in text.splitlines():
        stripped = line.lstrip()
        symbol = stripped.split(" ", 1)[0] if stripped else ""
        style = _LINE_STYLES.get(symbol, "bold" if line.startswith("Plan:") else "")
        out.print(Text(line, style=style))


_RESULT_STYLES = {
    "applied": "green",
    "removed": "green",
    "rolled-back": "yellow",
    "failed": "red",
    "skipped": "dim",
}


def print_results(results: Sequence[TargetResultLike], console: Console) -> None:
    """One line per target: what happened to it, and why when it did not go well."""
    for result in results:
        line = Text(f"  {result.target:<20} ") + Text(
            result.status, style=_RESULT_STYLES.get(result.status, "")
        )
        lines = result.detail.splitlines()
        if lines:
            line += Text(f"  {lines[0]}")
        console.print(line)
        for more in lines[1:]:  # e.g. every failed preflight check
            console.print(Text(f"  {'':<20} {more}"))


class FailedResultLike(TargetResultLike, Protocol):
    logs: str


def print_failure(results: Sequence[FailedResultLike]) -> None:
    """The per-target summary of a failed apply or rollback, then each failing target's
    last log lines."""
    print_results(results, err)
    for result in results:
        if result.logs.strip():
            err.print(Text(f"Last log lines of {result.target}:", style="bold"))
            err.print(Text(result.logs.rstrip()))


@contextmanager
def upload_bars() -> Iterator[Callable[[str, int], Callable[[int, int], None]]]:
    """Progress bars for bundle uploads (one per target, on stderr, gone when finished)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
    )

    def bar(target: str, total: int) -> Callable[[int, int], None]:
        task = progress.add_task(f"{target}: upload", total=total)

        def update(done: int, size: int) -> None:
            progress.update(task, completed=done, total=size)
            if done >= size:
                progress.remove_task(task)

        return update

    with progress:
        yield bar


def print_json(data: object) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def step_reporter() -> Callable[[str, str], None]:
    def report(target: str, message: str) -> None:
        err.print(Text(f"{target}: ", style="bold cyan") + Text(message))

    return report


def confirm(question: str) -> bool:
    if not sys.stdin.isatty():
        raise WrctlError("confirmation needed but stdin is not a terminal; pass --auto-approve")
    return typer.confirm(question, default=False)

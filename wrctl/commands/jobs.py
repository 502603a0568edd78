"""`wrctl jobs submit|status|list` and `wrctl schedules list` (logic in wrctl/jobs.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from wrctl.commands.exits import QuickHelp, WrctlCommand
from wrctl.commands.options import ClusterOption, JsonOut, Manager, overrides

if TYPE_CHECKING:
    from wrctl.managerapi import ManagerClient


class _Group(QuickHelp, TyperGroup):
    pass


app = typer.Typer(
    cls=_Group,
    help="Submit worker jobs, read them and list them.",
    add_completion=False,
    no_args_is_help=True,
)
schedules_app = typer.Typer(
    cls=_Group,
    help="The schedules the managers fire (declared as [[schedule]] in cluster.toml).",
    add_completion=False,
    no_args_is_help=True,
)


@contextmanager
def _client(cluster: Path, manager: str | None) -> Iterator[ManagerClient]:
    from wrctl.config import load_targets
    from wrctl.credentials import resolve_credentials
    from wrctl.managerapi import ManagerClient

    targets = load_targets(cluster, overrides(manager))
    client = ManagerClient(targets.manager.endpoints, resolve_credentials(targets.config))
    try:
        yield client
    finally:
        client.close()


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    from rich.table import Table

    from wrctl.console import out

    table = Table(*columns)
    for row in rows:
        table.add_row(*("-" if row[c] is None else str(row[c]) for c in columns))
    out.print(table)


@app.command("submit", cls=WrctlCommand)
def submit(
    module: Annotated[str, typer.Argument(help="The worker module, NAMESPACE.MODULE.")],
    job_type: Annotated[str, typer.Argument(help="The job type its handler is registered for.")],
    data: Annotated[
        str | None, typer.Option("--data", help="The payload, a JSON document.", metavar="JSON")
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Only this version of the module runs it.")
    ] = None,
    max_attempts: Annotated[
        int | None, typer.Option("--max-attempts", min=1, max=100, help="Attempts before dead.")
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option("--idempotency-key", help="A repeated submit with it returns the first job."),
    ] = None,
    cluster: ClusterOption = Path("cluster.toml"),
    manager: Manager = None,
    json_out: JsonOut = False,
) -> None:
    """Queue a job; print its id (`wrctl jobs status ID` follows it)."""
    from wrctl.console import out, print_json
    from wrctl.jobs import submit_request

    request = submit_request(module, job_type, data, version, max_attempts, idempotency_key)
    with _client(cluster, manager) as client:
        answer = client.submit_job(request)
    if json_out:
        print_json({"job_id": answer.job_id, "existing": answer.existing})
    elif answer.existing:
        out.print(f"Job {answer.job_id} (an earlier submit with this idempotency key).")
    else:
        out.print(f"Job {answer.job_id} submitted.")


@app.command("status", cls=WrctlCommand)
def status(
    job_id: Annotated[str, typer.Argument(help="The job's id.")],
    cluster: ClusterOption = Path("cluster.toml"),
    manager: Manager = None,
    json_out: JsonOut = False,
) -> None:
    """One job: state, attempts, last error, result."""
    import json

    from wrctl.console import out, print_json
    from wrctl.jobs import job_row

    with _client(cluster, manager) as client:
        row = job_row(client.job_status(job_id), with_result=True)
    if json_out:
        print_json(row)
        return
    for key, value in row.items():
        if value is not None:
            shown = value if isinstance(value, str | int) else json.dumps(value)
            out.print(f"{key + ':':<17}{shown}", markup=False, highlight=False)


@app.command("list", cls=WrctlCommand)
def list_jobs(
    module: Annotated[
        str | None,
        typer.Option("--module", help="Only this NAMESPACE.MODULE (or NAMESPACE).", metavar="M"),
    ] = None,
    state: Annotated[
        str | None, typer.Option("--state", help="pending, running, complete or dead.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="At most.")] = 50,
    cluster: ClusterOption = Path("cluster.toml"),
    manager: Manager = None,
    json_out: JsonOut = False,
) -> None:
    """Jobs, newest first."""
    from wrctl.console import out, print_json
    from wrctl.jobs import job_row, list_request

    request = list_request(module, state, limit)
    with _client(cluster, manager) as client:
        rows = [job_row(job) for job in client.jobs(request)]
    if json_out:
        print_json(rows)
    elif not rows:
        out.print("No jobs.")
    else:
        _table(rows, ["job_id", "module", "job_type", "state", "attempt", "created_at", "error"])


@schedules_app.command("list", cls=WrctlCommand)
def list_schedules(
    namespace: Annotated[str, typer.Argument(help="Only this namespace.")] = "",
    cluster: ClusterOption = Path("cluster.toml"),
    manager: Manager = None,
    json_out: JsonOut = False,
) -> None:
    """Schedules: what they fire, when they fired last and fire next, failures in a row."""
    from wrctl.console import out, print_json
    from wrctl.jobs import schedule_row

    with _client(cluster, manager) as client:
        rows = [schedule_row(s) for s in client.schedules(namespace)]
    if json_out:
        print_json(rows)
    elif not rows:
        out.print("No schedules.")
    else:
        columns = ["name", "module", "job_type", "every", "last_fired_at", "next_fire_at"]
        _table(rows, [*columns, "consecutive_failures", "last_error"])

"""`wrctl secrets set|list|delete` (logic in wrctl/secrets.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from wrctl.commands.exits import QuickHelp, WrctlCommand
from wrctl.commands.options import AutoApprove, ClusterOption, JsonOut, Manager, overrides

if TYPE_CHECKING:
    from wrctl.config import Targets
    from wrctl.managerapi import ManagerClient


class _SecretsGroup(QuickHelp, TyperGroup):
    pass


app = typer.Typer(
    cls=_SecretsGroup,
    help="Store, list and delete the manager's secrets (values never echo).",
    add_completion=False,
    no_args_is_help=True,
)

Namespace = Annotated[str, typer.Argument(help="The modules' namespace.")]
Name = Annotated[str, typer.Argument(help="The secret's name, as env = { secret = NAME } says.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")]


@contextmanager
def _client(cluster: Path, manager: str | None) -> Iterator[tuple[Targets, ManagerClient]]:
    from wrctl.config import load_targets
    from wrctl.credentials import resolve_credentials
    from wrctl.managerapi import ManagerClient

    targets = load_targets(cluster, overrides(manager))
    client = ManagerClient(targets.manager.endpoints, resolve_credentials(targets.config))
    try:
        yield targets, client
    finally:
        client.close()


@app.command("set", cls=WrctlCommand)
def set_secret(
    namespace: Namespace,
    name: Name,
    from_file: Annotated[
        Path | None, typer.Option("--from-file", help="Read the value from this file.")
    ] = None,
    cluster: ClusterOption = Path("cluster.toml"),
    manager: Manager = None,
) -> None:
    """Store a secret: the value from a hidden prompt, stdin or --from-file (never an
    argument). Setting it again makes a new version."""
    from wrctl.console import out
    from wrctl.secrets import read_value

    label = f"{namespace}/{name}"
    with _client(cluster, manager) as (targets, client):
        value = read_value(label, from_file)
        client.set_secret(namespace, name, value)
        entry = next((e for e in client.secrets(namespace) if e.key == name), None)
    version = f" version {entry.version}" if entry is not None and entry.version else ""
    out.print(f"Secret {label}{version} stored in the manager at {targets.manager.endpoint}.")


@app.command("list", cls=WrctlCommand)
def list_secrets(
    namespace: Annotated[str, typer.Argument(help="Only this namespace.")] = "",
    cluster: ClusterOption = Path("cluster.toml"),
    manager: Manager = None,
    json_out: JsonOut = False,
) -> None:
    """Secrets the manager holds (and those cluster.toml names that it lacks): name,
    version, last update and the modules granted them. Never values."""
    from rich.table import Table

    from wrctl.console import out, print_json
    from wrctl.secrets import secret_rows

    with _client(cluster, manager) as (targets, client):
        rows = secret_rows(client.secrets(namespace), targets.config, namespace)
    if json_out:
        print_json([r.to_json() for r in rows])
        return
    if not rows:
        out.print("No secrets.")
        return
    table = Table("namespace", "name", "version", "updated (UTC)", "modules granted")
    for r in rows:
        table.add_row(
            r.namespace,
            r.name,
            str(r.version) if r.version else "[red]missing[/red]",
            f"{r.updated:%Y-%m-%d %H:%M:%S}" if r.updated else "-",
            ", ".join(r.modules) or "-",
        )
    out.print(table)


@app.command("delete", cls=WrctlCommand)
def delete_secret(
    namespace: Namespace,
    name: Name,
    cluster: ClusterOption = Path("cluster.toml"),
    manager: Manager = None,
    yes: Yes = False,
    auto_approve: AutoApprove = False,
) -> None:
    """Delete a secret from the manager (asks first unless --yes/--auto-approve)."""
    from wrctl.commands.exits import abort
    from wrctl.console import confirm, out
    from wrctl.errors import WrctlError
    from wrctl.secrets import granted_modules

    label = f"{namespace}/{name}"
    with _client(cluster, manager) as (targets, client):
        if not any(e.key == name for e in client.secrets(namespace)):
            raise WrctlError(
                f"secret {label}: the manager at {targets.manager.endpoint} holds no such secret"
            )
        users = granted_modules(targets.config, namespace, name)
        note = f" ({', '.join(users)} name it: their engines cannot start without it)"
        if not (yes or auto_approve) and not confirm(
            f"Delete secret {label}{note if users else ''}?"
        ):
            abort("Delete cancelled.")
        client.delete_secret(namespace, name)
    out.print(f"Secret {label} deleted.")

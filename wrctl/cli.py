"""The wrctl command line, assembled: each command's signature and body live in
`wrctl/commands/` (one file per command group); errors become exit codes in
`wrctl/commands/exits.py`. Command modules import only typer at start, and what a command
needs (grpc, protobuf, paramiko, pydantic, ...) when it runs, so `wrctl --help` is quick."""

from __future__ import annotations

import os

import typer

from wrctl.commands import (
    apply,
    build,
    bundle,
    cert,
    invoke,
    jobs,
    logs,
    plan,
    rollback,
    secrets,
    status,
    unlock,
    validate,
    version,
)
from wrctl.commands.exits import WrctlCommand, WrctlGroup

app = typer.Typer(
    name="wrctl",
    cls=WrctlGroup,
    help="Declarative deploys for wruntime clusters: plan, apply, bundle, invoke, secrets, cert.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help and usage errors: typer's rich ones import rich.markdown, pygments
    # and markdown-it, which would triple the time `wrctl --help` takes
    rich_markup_mode=None,
)

app.command(cls=WrctlCommand)(version.version)
app.command(cls=WrctlCommand)(build.build)
app.command(cls=WrctlCommand)(validate.validate)
app.command(cls=WrctlCommand)(plan.plan)
app.command(cls=WrctlCommand)(apply.apply)
app.command(cls=WrctlCommand)(apply.destroy)
app.command(cls=WrctlCommand)(rollback.rollback)
app.command(cls=WrctlCommand)(logs.logs)
app.command(cls=WrctlCommand)(rollback.history)
app.command(cls=WrctlCommand)(status.status)
app.command(cls=WrctlCommand)(invoke.invoke)
app.add_typer(bundle.app, name="bundle")
app.add_typer(secrets.app, name="secrets")
app.add_typer(cert.app, name="cert")
app.add_typer(jobs.app, name="jobs")
app.add_typer(jobs.schedules_app, name="schedules")
app.command("force-unlock", cls=WrctlCommand)(unlock.force_unlock)


def main() -> None:
    # grpc's C core logs a refused TLS handshake at info level on stderr; wrctl reports it
    # as one error of its own. Read when grpc is first imported, which commands do lazily.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    app()

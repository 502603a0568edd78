"""`wrctl invoke`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from runtime import wire
from wrctl.commands.exits import EXIT_ERROR
from wrctl.commands.options import Manager, MaybeCluster, overrides

if TYPE_CHECKING:
    from wrctl.credentials import OperatorCredentials
    from wrctl.invoke import InvokeResult


def invoke(
    target: Annotated[str, typer.Argument(help="NAMESPACE.MODULE/PATH, e.g. example.caller/run")],
    data: Annotated[str | None, typer.Option("--data", "-d", help="Request body (JSON).")] = None,
    data_file: Annotated[
        Path | None, typer.Option(help="Read the request body from a file.")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Semver requirement, e.g. ^1.2")] = None,
    proxy: Annotated[
        str, typer.Option(envvar="WR_PROXY", help="Proxy data address.")
    ] = f"127.0.0.1:{wire.PROXY_DATA_PORT}",
    manager: Manager = None,
    cluster: MaybeCluster = None,
    method: Annotated[str, typer.Option("-X", "--method", help="HTTP method.")] = "POST",
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Send one request to a module through the proxy and print the reply."""
    from wrctl.config import load_cluster
    from wrctl.config.targets import manager_endpoints
    from wrctl.console import err
    from wrctl.credentials import CredentialsError, resolve_credentials
    from wrctl.errors import WrctlError
    from wrctl.invoke import invoke as send
    from wrctl.invoke import rpc_path

    if data is not None and data_file is not None:
        raise WrctlError("give --data or --data-file, not both")
    body = data.encode() if data is not None else None
    if data_file is not None:
        try:
            body = data_file.read_bytes()
        except OSError as exc:
            raise WrctlError(f"--data-file {data_file}: {exc.strerror}") from None
    config = load_cluster(cluster) if cluster is not None else None
    address = manager_endpoints(config, overrides(manager))
    credentials: OperatorCredentials | None = None
    if rpc_path(target):  # only a schema lookup asks the manager; the request needs no cert
        try:
            credentials = resolve_credentials(config)
        except CredentialsError as exc:
            err.print(f"[yellow]{exc}; sending the body as given (no schema encoding)[/yellow]")
    result = send(target, body, proxy, address, credentials, version, method.upper())
    _show(result, json_out)
    if not result.ok:
        raise typer.Exit(EXIT_ERROR)


def _show(result: InvokeResult, json_out: bool) -> None:
    """The reply: a JSON summary, or the status line on stderr and the body on stdout."""
    import json
    import sys

    from wrctl.console import err, out, print_json

    if json_out:
        body: object = result.decoded
        if body is None:
            body = result.body.decode("utf-8", "replace")
        summary = {"status": result.status, "elapsed_ms": round(result.elapsed_ms, 2)}
        print_json(summary | {"trace_id": result.trace_id, "body": body})
        return
    colour = "green" if result.ok else "red"
    err.print(
        f"[{colour}]{result.status} {result.reason}[/{colour}] in "
        f"{result.elapsed_ms:.1f} ms, trace {result.trace_id}"
    )
    if result.decoded is not None:
        out.print_json(json.dumps(result.decoded))
    else:
        sys.stdout.write(result.body.decode("utf-8", "replace"))
        if result.body and not result.body.endswith(b"\n"):
            sys.stdout.write("\n")

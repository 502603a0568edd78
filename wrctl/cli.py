"""The wrctl command line. Only argument parsing and printing live here; every command calls
into wrctl's libraries (config, plan, bundle, deploy)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from runtime.wire import CAPABILITIES
from wrctl.console import EXIT_CHANGES, errors_to_exit

if TYPE_CHECKING:
    # typer vendors click; its Context is what TyperGroup methods take
    from typer._click.core import Context as ClickContext

    from wrctl.deploy.hosts import HostAccess

app = typer.Typer(
    name="wrctl",
    help="Declarative deploys for wruntime clusters: plan, apply, bundle, invoke.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ClusterFile = Annotated[Path, typer.Argument(help="The cluster description.")]


AcceptNewHostKey = Annotated[
    bool,
    typer.Option(
        "--accept-new-host-key",
        help="Trust the key of a host not yet in known_hosts and add it (a changed key is "
        "always refused).",
    ),
]
KnownHosts = Annotated[
    str | None,
    typer.Option("--known-hosts", help="known_hosts file to check hosts against.", metavar="FILE"),
]


def _access(known_hosts: str | None, accept_new_host_key: bool) -> HostAccess:
    from wrctl.deploy.hosts import HostAccess

    return HostAccess(known_hosts, accept_new_host_key)


@app.command()
def version() -> None:
    """Print wrctl's (and the runtime's) version."""
    from runtime.version import __version__

    typer.echo(f"wrctl {__version__}")


@app.command()
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
    from wrctl.commands.build import run_build
    from wrctl.console import EXIT_USAGE, abort

    for cap in capability or []:
        if cap not in CAPABILITIES:
            expected = ", ".join(CAPABILITIES)
            abort(f"--capability: unknown capability {cap!r} (expected {expected})", EXIT_USAGE)
    with errors_to_exit():
        run_build(guest_dir, output, list(proto or []), list(capability or []), force)


@app.command()
def validate(cluster: ClusterFile = Path("cluster.toml")) -> None:
    """Check cluster.toml and the files it names, without contacting anything."""
    from wrctl.config import load_cluster
    from wrctl.console import out

    with errors_to_exit():
        config = load_cluster(cluster)
    out.print(
        f"[green]{cluster} is valid[/green]: cluster {config.cluster.name}, "
        f"{len(config.node)} node(s), {len(config.module)} module(s)"
    )


@app.command()
def plan(
    cluster: ClusterFile = Path("cluster.toml"),
    json_out: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    out_file: Annotated[
        Path | None, typer.Option("-out", "--out", help="Save the plan for `wrctl apply FILE`.")
    ] = None,
    detailed_exitcode: Annotated[
        bool, typer.Option("--detailed-exitcode", help="Exit 2 when there are changes.")
    ] = False,
) -> None:
    """Show what apply would change: cluster.toml against the live cluster."""
    from wrctl.commands.plan import run_plan

    with errors_to_exit():
        changes = run_plan(cluster, json_out, out_file)
    if detailed_exitcode and changes:
        raise typer.Exit(EXIT_CHANGES)


@app.command()
def apply(
    target: Annotated[Path, typer.Argument(help="cluster.toml, or a plan saved with -out.")] = Path(
        "cluster.toml"
    ),
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Do not ask.")] = False,
    health_timeout: Annotated[
        float, typer.Option(help="Seconds a node has to pass its health gate.")
    ] = 60.0,
    parallel: Annotated[
        int, typer.Option(min=1, max=64, help="Nodes rolled out at the same time.")
    ] = 1,
    accept_new_host_key: AcceptNewHostKey = False,
    known_hosts: KnownHosts = None,
) -> None:
    """Converge the cluster: show the plan, confirm, then deploy manager and nodes."""
    from wrctl.commands.apply import run_apply

    with errors_to_exit():
        run_apply(
            target,
            auto_approve,
            health_timeout,
            parallel,
            _access(known_hosts, accept_new_host_key),
        )


@app.command()
def destroy(
    cluster: ClusterFile = Path("cluster.toml"),
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Do not ask.")] = False,
    accept_new_host_key: AcceptNewHostKey = False,
    known_hosts: KnownHosts = None,
) -> None:
    """Remove everything apply created: node services, the manager and its state."""
    from wrctl.commands.apply import run_destroy

    with errors_to_exit():
        run_destroy(cluster, auto_approve, _access(known_hosts, accept_new_host_key))


@app.command()
def rollback(
    cluster: ClusterFile = Path("cluster.toml"),
    node: Annotated[
        list[str] | None,
        typer.Option("--node", "-n", help="Only this node (repeatable). Default: every node."),
    ] = None,
    auto_approve: Annotated[bool, typer.Option("--auto-approve", help="Do not ask.")] = False,
    health_timeout: Annotated[
        float, typer.Option(help="Seconds a node has to pass its health gate.")
    ] = 60.0,
    accept_new_host_key: AcceptNewHostKey = False,
    known_hosts: KnownHosts = None,
) -> None:
    """Return nodes to the release they ran before the current one."""
    from wrctl.commands.rollback import run_rollback

    with errors_to_exit():
        run_rollback(
            cluster,
            node or [],
            auto_approve,
            health_timeout,
            _access(known_hosts, accept_new_host_key),
        )


@app.command()
def logs(
    node: Annotated[str, typer.Argument(help="A node name, or `manager`.")],
    service: Annotated[
        str | None,
        typer.Argument(help="proxy, engine-0, ... (default: every service of the node)."),
    ] = None,
    cluster: Annotated[Path, typer.Option("-c", "--cluster", help="The cluster.toml.")] = Path(
        "cluster.toml"
    ),
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing.")] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0, help="Lines of history.")] = 100,
    accept_new_host_key: AcceptNewHostKey = False,
    known_hosts: KnownHosts = None,
) -> None:
    """Print a node's service logs, read on its host (journal, docker or log files)."""
    from wrctl.commands.logs import run_logs

    with errors_to_exit():
        code = run_logs(
            cluster, node, service, follow, lines, _access(known_hosts, accept_new_host_key)
        )
    if code not in (0, 130):
        raise typer.Exit(code)


@app.command()
def history(
    cluster: ClusterFile = Path("cluster.toml"),
    node: Annotated[str | None, typer.Option("--node", "-n", help="Only this node.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="How many records.")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Releases recorded by apply and rollback, newest first, failed attempts included."""
    from wrctl.commands.rollback import run_history

    with errors_to_exit():
        run_history(cluster, node, limit, json_out)


@app.command()
def status(
    cluster: Annotated[
        Path | None, typer.Option("-c", "--cluster", help="Use this cluster.toml's manager.")
    ] = None,
    manager: Annotated[str | None, typer.Option(help="Manager host:port.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Nodes, engines, modules, versions, health and the applied releases."""
    from wrctl.commands.status import run_status

    with errors_to_exit():
        run_status(cluster, manager, json_out)


@app.command()
def invoke(
    target: Annotated[str, typer.Argument(help="NAMESPACE.MODULE/PATH, e.g. example.caller/run")],
    data: Annotated[str | None, typer.Option("--data", "-d", help="Request body (JSON).")] = None,
    data_file: Annotated[
        Path | None, typer.Option(help="Read the request body from a file.")
    ] = None,
    version: Annotated[str | None, typer.Option(help="Semver requirement, e.g. ^1.2")] = None,
    proxy: Annotated[
        str, typer.Option(envvar="WR_PROXY", help="Proxy data address.")
    ] = "127.0.0.1:9001",
    manager: Annotated[
        str, typer.Option(envvar="WR_MANAGER", help="Manager address.")
    ] = "127.0.0.1:9000",
    method: Annotated[str, typer.Option("-X", "--method", help="HTTP method.")] = "POST",
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary.")] = False,
) -> None:
    """Send one request to a module through the proxy and print the reply."""
    from wrctl.commands.invoke import run_invoke

    with errors_to_exit():
        ok = run_invoke(target, data, data_file, version, proxy, manager, method, json_out)
    if not ok:
        raise typer.Exit(1)


class _BundleGroup(TyperGroup):
    """`wrctl bundle [OPTIONS] CLUSTER` builds; `inspect`, `verify`, `keygen` are subcommands."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["build", *args]
        return super().parse_args(ctx, args)


bundle_app = typer.Typer(
    cls=_BundleGroup,
    help="Write offline bundles (build), or inspect, verify and sign them.",
    add_completion=False,
)
app.add_typer(bundle_app, name="bundle")


@bundle_app.command("build")
def bundle_build(
    cluster: ClusterFile = Path("cluster.toml"),
    node: Annotated[
        list[str] | None, typer.Option("--node", help="Only this node (repeatable); manager too.")
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Directory to write to.")] = Path(
        "bundles"
    ),
    platform: Annotated[
        str | None,
        typer.Option(
            help="Wheel platform tag of the hosts (default: this machine's manylinux tag)."
        ),
    ] = None,
    python: Annotated[str, typer.Option(help="Python version of the hosts.")] = "3.11",
    sign: Annotated[
        Path | None, typer.Option(help="Sign the manifests with this ed25519 key (PEM).")
    ] = None,
) -> None:
    """Write the manager's and each node's bundle (wheels included: installs offline)."""
    from wrctl.commands.bundle import run_bundle

    with errors_to_exit():
        run_bundle(cluster, list(node or []), output, platform, python, sign)


@bundle_app.command("inspect")
def bundle_inspect(
    file: Annotated[Path, typer.Argument(help="A bundle (.tar.gz) or an unpacked release.")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print a bundle's manifest: target, platform, modules, placeholders, files."""
    from wrctl.commands.bundle import run_inspect

    with errors_to_exit():
        run_inspect(file, json_out)


@bundle_app.command("verify")
def bundle_verify(
    file: Annotated[Path, typer.Argument(help="A bundle (.tar.gz) or an unpacked release.")],
    trusted_key: Annotated[
        list[str] | None,
        typer.Option(help="Base64 ed25519 public key; the manifest must be signed by one."),
    ] = None,
) -> None:
    """Check the manifest schema, every file's sha256 and size, and the signature."""
    from wrctl.commands.bundle import run_verify

    with errors_to_exit():
        run_verify(file, list(trusted_key or []))


@bundle_app.command("keygen")
def bundle_keygen(
    file: Annotated[Path, typer.Argument(help="Where to write the private key (PEM, 0600).")],
) -> None:
    """Make an ed25519 signing key pair (FILE and FILE.pub) for `wrctl bundle --sign`."""
    from wrctl.commands.bundle import run_keygen

    with errors_to_exit():
        run_keygen(file)


@app.command("force-unlock")
def force_unlock(
    lock_id: Annotated[str, typer.Argument(help="The lock id shown by the failed apply.")],
    manager: Annotated[
        str, typer.Option(envvar="WR_MANAGER", help="Manager address.")
    ] = "127.0.0.1:9000",
) -> None:
    """Release an apply lock whose holder died."""
    from wrctl.console import out
    from wrctl.managerapi import ManagerClient

    with errors_to_exit():
        client = ManagerClient(manager)
        try:
            client.force_unlock(lock_id)
        finally:
            client.close()
    out.print(f"Lock {lock_id} released.")


def main() -> None:
    app()

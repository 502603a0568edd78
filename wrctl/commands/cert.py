"""`wrctl cert ca|issue|rotate` (logic in wrctl/certs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from wrctl.commands.exits import QuickHelp, WrctlCommand
from wrctl.commands.options import ClusterOption, JsonOut


class _CertGroup(QuickHelp, TyperGroup):
    pass


app = typer.Typer(
    cls=_CertGroup,
    help="The cluster CA: show it, issue certificates, rotate node certificates.",
    add_completion=False,
    no_args_is_help=True,
)


@app.command("ca", cls=WrctlCommand)
def ca(cluster: ClusterOption = Path("cluster.toml"), json_out: JsonOut = False) -> None:
    """The cluster CA: subject, SHA-256 fingerprint, expiry."""
    from wrctl.certs import cert_info
    from wrctl.config import load_cluster
    from wrctl.console import out, print_json
    from wrctl.pki import cluster_ca

    config = load_cluster(cluster)
    authority = cluster_ca(config.source, config.cluster.name)
    info = cert_info("CA", authority.directory / "ca.crt")
    if json_out:
        print_json(info.to_json() | {"can_issue": authority.can_issue})
        return
    out.print(f"Cluster {config.cluster.name} CA ({info.path})")
    out.print(f"  subject      {info.subject}")
    out.print(f"  fingerprint  {info.fingerprint}")
    out.print(f"  expires      {info.not_after:%Y-%m-%d %H:%M} UTC ({info.days_left} days left)")
    if not authority.can_issue:
        out.print("  [yellow]no ca.key here: this copy cannot issue certificates[/yellow]")


@app.command("issue", cls=WrctlCommand)
def issue(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write the files to.")],
    operator: Annotated[
        str | None, typer.Option("--operator", help="An operator certificate for NAME.")
    ] = None,
    node: Annotated[
        str | None, typer.Option("--node", help="A node certificate for node NAME (with --host).")
    ] = None,
    manager: Annotated[
        bool, typer.Option("--manager", help="A manager certificate (with --host).")
    ] = False,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Address the node or manager is reached at (repeatable)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
    cluster: ClusterOption = Path("cluster.toml"),
) -> None:
    """Issue a certificate, its key (0600) and ca.crt into --out: for a second operator
    (use it with WR_CREDENTIALS=DIR), or a node or manager installed from a bundle."""
    from wrctl.certs import manager_for, node_for, operator_for, write_credentials
    from wrctl.config import load_cluster
    from wrctl.console import out
    from wrctl.errors import WrctlError
    from wrctl.pki import cluster_ca

    chosen = [
        k for k, v in (("--operator", operator), ("--node", node), ("--manager", manager)) if v
    ]
    if len(chosen) != 1:
        raise WrctlError("give exactly one of --operator NAME, --node NAME, --manager")
    hosts = host or []
    if (node or manager) and not hosts:
        raise WrctlError(f"{chosen[0]} needs --host: the address it is reached at")
    if operator and hosts:
        raise WrctlError("--host is for --node and --manager; an operator has no address")
    if node and len(hosts) != 1:
        raise WrctlError("--node takes one --host: the address peers dial the node at")
    config = load_cluster(cluster)
    authority = cluster_ca(config.source, config.cluster.name)
    if operator:
        credentials = operator_for(authority, operator)
        use = f"use it with WR_CREDENTIALS={out_dir}"
    elif node:
        credentials = node_for(authority, node, hosts[0])
        use = f"copy them to WORKDIR/node-{node}/tls/ on {hosts[0]} (owner-only)"
    else:
        credentials = manager_for(authority, hosts)
        use = "copy them to WORKDIR/manager/tls/ on the manager's host (owner-only)"
    written = write_credentials(credentials, out_dir, force)
    out.print(f"Wrote {', '.join(p.name for p in written)} to {out_dir}; {use}.")
    expires = credentials.certificate.not_valid_after_utc
    out.print(f"Certificate {credentials.fingerprint}, expires {expires:%Y-%m-%d}.")


@app.command("rotate", cls=WrctlCommand)
def rotate(
    node: Annotated[str | None, typer.Option("--node", help="Only this node.")] = None,
    cluster: ClusterOption = Path("cluster.toml"),
) -> None:
    """New node certificates (every node, or --node N); the old pairs are archived in
    pki/archive/. The next apply uploads them and the proxies reload them, no restart."""
    from wrctl.certs import rotate_nodes
    from wrctl.config import load_targets
    from wrctl.console import out
    from wrctl.pki import cluster_ca

    targets = load_targets(cluster)
    chosen = [targets.node(node)] if node else list(targets.nodes)
    authority = cluster_ca(targets.config.source, targets.config.cluster.name)
    archive, fingerprints = rotate_nodes(authority, {n.name: n.place.wire_host for n in chosen})
    for name, fingerprint in fingerprints.items():
        out.print(f"node {name}: new certificate {fingerprint}")
    if archive is not None:
        out.print(f"Previous certificates and keys moved to {archive}.")
    out.print("Run `wrctl apply` to roll them out (no restart: proxies reload them).")

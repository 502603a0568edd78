"""`wrctl bundle` (build), `wrctl bundle inspect|verify|keygen`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup

from wrctl.commands.exits import QuickHelp, WrctlCommand
from wrctl.commands.options import ClusterFile, JsonOut

if TYPE_CHECKING:
    from typer._click.core import Context as ClickContext

    from wrctl.bundle.build import Report
    from wrctl.config import Targets

BundleFile = Annotated[Path, typer.Argument(help="A bundle (.tar.gz) or an unpacked release.")]


class _BundleGroup(QuickHelp, TyperGroup):
    """`wrctl bundle [OPTIONS] CLUSTER` builds; `inspect`, `verify`, `keygen` are subcommands."""

    def parse_args(self, ctx: ClickContext, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("--help", "-h")):
            args = ["build", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_BundleGroup,
    help="Write offline bundles (build), or inspect, verify and sign them.",
    add_completion=False,
)


@app.command("build", cls=WrctlCommand)
def build(
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
    from runtime.version import __version__
    from wrctl.build.paths import cache_root
    from wrctl.bundle.build import BundleOptions, build_bundles
    from wrctl.bundle.wheels import Target, default_target
    from wrctl.bundle.wheelset import collect_wheels
    from wrctl.config import load_targets
    from wrctl.console import out
    from wrctl.errors import WrctlError

    targets = load_targets(cluster)
    known = [n.name for n in targets.nodes]
    for name in node or []:
        if name not in known:
            raise WrctlError(
                f"--node {name!r}: no such node in {cluster} (nodes: {', '.join(known)})"
            )
    target = Target(platform, python) if platform else default_target(python)
    signing_key = None
    if sign is not None:
        from wrctl.bundle.signing import load_private_key

        signing_key = load_private_key(sign)
    with _progress() as report:
        wheels = collect_wheels(target, cache_root(), report)
        options = BundleOptions(wheels=wheels, signing_key=signing_key, report=report)
        bundles = build_bundles(targets, output, __version__, node or None, options)
    for bundle in bundles:
        size = bundle.path.stat().st_size / 1e6
        out.print(f"[green]wrote[/] {bundle.path} ({size:.1f} MB) {bundle.digest}")
    out.print(tls_note(targets, [b.target for b in bundles]), markup=False)


def tls_note(targets: Targets, bundled: list[str]) -> str:
    """How an offline install gets its TLS files, which no bundle carries (keys stay out of
    anything that is copied around)."""
    lines = [
        "TLS certificates and keys are not in the bundles. Before starting a target, put its",
        "files in WORKDIR/TARGET/tls/ (owner-only), issued on the CA holder's machine:",
    ]
    for target in bundled:
        if target == "manager":
            host = targets.manager.place.wire_host
            command = f"wrctl cert issue --manager --host {host} --out DIR"
        else:
            node = targets.node(target.removeprefix("node-"))
            command = f"wrctl cert issue --node {node.name} --host {node.place.wire_host} --out DIR"
        lines.append(f"  {target}: {command}")
    return "\n".join(lines)


@contextmanager
def _progress() -> Iterator[Report]:
    """A rich progress bar per step (wheels, schemas, modules, packing)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

    from wrctl.console import err

    tasks: dict[str, TaskID] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=False) as progress:

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total or 1)
            progress.update(tasks[step], completed=done if total else 1, total=total or 1)

        yield report


@app.command("inspect", cls=WrctlCommand)
def inspect(file: BundleFile, json_out: JsonOut = False) -> None:
    """Print a bundle's manifest: target, platform, modules, placeholders, files."""
    import hashlib

    from wrctl.bundle.hostverify import SIGNATURE, BundleInvalid, verify_bundle
    from wrctl.bundle.inspect import render_text, summarize
    from wrctl.bundle.tarball import read_tarball
    from wrctl.console import out, print_json
    from wrctl.errors import WrctlError

    try:
        manifest = verify_bundle(file)  # inspect only what is intact
    except BundleInvalid as exc:
        raise WrctlError(f"{file}: {exc}") from None
    signed = SIGNATURE in read_tarball(file) if file.is_file() else (file / SIGNATURE).is_file()
    digest = f"sha256:{hashlib.sha256(file.read_bytes()).hexdigest()}" if file.is_file() else "-"
    summary = summarize(manifest, digest, signed)
    if json_out:
        print_json(summary)
    else:
        out.print(render_text(summary), markup=False)


@app.command("verify", cls=WrctlCommand)
def verify(
    file: BundleFile,
    trusted_key: Annotated[
        list[str] | None,
        typer.Option(help="Base64 ed25519 public key; the manifest must be signed by one."),
    ] = None,
) -> None:
    """Check the manifest schema, every file's sha256 and size, and the signature."""
    from wrctl.bundle.hostverify import BundleInvalid, verify_bundle
    from wrctl.console import out
    from wrctl.errors import WrctlError

    keys = list(trusted_key or [])
    try:
        manifest = verify_bundle(file, keys)
    except BundleInvalid as exc:
        raise WrctlError(f"{file}: {exc}") from None
    signed = " and its signature is trusted" if keys else ""
    out.print(f"[green]ok[/]: {file}: {len(manifest['files'])} files match the manifest{signed}")


@app.command("keygen", cls=WrctlCommand)
def keygen(
    file: Annotated[Path, typer.Argument(help="Where to write the private key (PEM, 0600).")],
) -> None:
    """Make an ed25519 signing key pair (FILE and FILE.pub) for `wrctl bundle --sign`."""
    from wrctl.bundle.signing import generate_key
    from wrctl.console import err, out

    public = generate_key(file)
    err.print(f"[green]wrote[/] {file} (private, 0600) and {file}.pub")
    out.print("Add the public key to cluster.toml:", style="dim")
    out.print(f'[bundle]\ntrusted_keys = ["{public}"]', markup=False)

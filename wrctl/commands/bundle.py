"""`wrctl bundle`, `wrctl bundle inspect|verify|keygen`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn

from wrctl.bundle.build import Bundle, BundleOptions, Report, build_bundles
from wrctl.bundle.hostverify import SIGNATURE, BundleInvalid, verify_bundle
from wrctl.bundle.inspect import render_text, summarize
from wrctl.console import err, out, print_json
from wrctl.errors import WrctlError


@contextmanager
def _progress() -> Iterator[Report]:
    """A rich progress bar per step (wheels, schemas, modules, packing)."""
    tasks: dict[str, TaskID] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=False) as progress:

        def report(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = progress.add_task(step, total=total or 1)
            progress.update(tasks[step], completed=done if total else 1, total=total or 1)

        yield report


def run_bundle(
    cluster: Path,
    nodes: list[str],
    out_dir: Path,
    platform: str | None,
    python: str,
    sign: Path | None,
) -> list[Bundle]:
    from runtime.version import __version__
    from wrctl.build.paths import cache_root
    from wrctl.bundle.wheels import Target, default_target
    from wrctl.bundle.wheelset import collect_wheels
    from wrctl.config import load_cluster

    config = load_cluster(cluster)
    known = [n.name for n in config.node]
    for name in nodes:
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
        bundles = build_bundles(config, out_dir, __version__, nodes or None, options)
    for bundle in bundles:
        size = bundle.path.stat().st_size / 1e6
        out.print(f"[green]wrote[/] {bundle.path} ({size:.1f} MB) {bundle.digest}")
    return bundles


def run_inspect(path: Path, json_out: bool) -> None:
    try:
        manifest = verify_bundle(path)  # inspect only what is intact
    except BundleInvalid as exc:
        raise WrctlError(f"{path}: {exc}") from None
    from wrctl.bundle.tarball import read_tarball

    signed = SIGNATURE in read_tarball(path) if path.is_file() else (path / SIGNATURE).is_file()
    digest = f"sha256:{hashlib.sha256(path.read_bytes()).hexdigest()}" if path.is_file() else "-"
    summary = summarize(manifest, digest, signed)
    if json_out:
        print_json(summary)
    else:
        out.print(render_text(summary), markup=False)


def run_verify(path: Path, trusted_keys: list[str]) -> None:
    try:
        manifest = verify_bundle(path, trusted_keys)
    except BundleInvalid as exc:
        raise WrctlError(f"{path}: {exc}") from None
    signed = " and its signature is trusted" if trusted_keys else ""
    out.print(f"[green]ok[/]: {path}: {len(manifest['files'])} files match the manifest{signed}")


def run_keygen(path: Path) -> None:
    from wrctl.bundle.signing import generate_key

    public = generate_key(path)
    err.print(f"[green]wrote[/] {path} (private, 0600) and {path}.pub")
    out.print("Add the public key to cluster.toml:", style="dim")
    out.print(f'[bundle]\ntrusted_keys = ["{public}"]', markup=False)

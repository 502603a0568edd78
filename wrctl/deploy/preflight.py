"""Preflight: before anything is uploaded, check that the host can run the bundle (Python,
architecture, free disk, a usable workdir, the format's service manager). Every check runs;
each failure is one line."""

from __future__ import annotations

import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wrctl.deploy.rollout import TargetHost
from wrctl.deploy.transport import quote
from wrctl.errors import WrctlError

MIN_PYTHON = (3, 11)
DISK_MARGIN_BYTES = 256 * 1024 * 1024  # venv, logs and caches beyond the unpacked bundle
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8l": "aarch64"}
_ARCHES = ("x86_64", "aarch64", "armv7l", "ppc64le", "s390x", "i686", "riscv64")


class PreflightFailed(WrctlError):
    """One or more preflight checks failed on a host."""

    def __init__(self, host: str, problems: list[str]) -> None:
        super().__init__(f"preflight failed on {host}:\n" + "\n".join(f"  - {p}" for p in problems))
        self.host = host
        self.problems = problems


@dataclass(frozen=True)
class BundleFacts:
    """What the host must match: the bundle's target Python and machine, and its size."""

    python: str  # "3.11"
    machine: str  # "x86_64"
    size: int  # bytes of the tarball


def normalize_arch(name: str) -> str:
    name = name.strip().lower()
    return _ARCH_ALIASES.get(name, name)


def _platform_machine(platform: Any) -> str:
    """The machine from the manifest's `platform`: {"machine": ...} or a wheel-style tag
    such as manylinux_2_17_x86_64."""
    if isinstance(platform, dict) and isinstance(platform.get("machine"), str):
        return normalize_arch(platform["machine"])
    text = json.dumps(platform)
    for arch in (*_ARCHES, *_ARCH_ALIASES):
        if arch in text:
            return normalize_arch(arch)
    raise WrctlError(f"bundle manifest: cannot tell the target machine from platform {text}")


def bundle_facts(path: Path) -> BundleFacts:
    """Read the facts preflight needs from a bundle tarball's manifest.json."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            member = tar.extractfile("manifest.json")
            if member is None:
                raise KeyError("manifest.json")
            manifest = json.loads(member.read())
    except (OSError, KeyError, tarfile.TarError, json.JSONDecodeError) as exc:
        raise WrctlError(f"{path}: no readable manifest.json ({exc})") from None
    platform = manifest.get("platform", {})
    python = platform.get("python", "") if isinstance(platform, dict) else ""
    python = python or manifest.get("python", "")
    return BundleFacts(str(python), _platform_machine(platform), path.stat().st_size)


def _check_python(host: TargetHost, facts: BundleFacts) -> list[str]:
    python = host.python
    result = host.transport.run(
        f"{quote(python)} -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])'",
        check=False,
    )
    if not result.ok or not re.fullmatch(r"\d+\.\d+\.\d+", result.stdout.strip()):
        why = (result.stderr.strip().splitlines() or ["no version printed"])[-1]
        return [
            f"python `{python}` is not runnable on the host ({why}); set `python` in "
            "cluster.toml to a Python >= 3.11 interpreter"
        ]
    version = result.stdout.strip()
    major, minor, _ = (int(p) for p in version.split("."))
    if (major, minor) < MIN_PYTHON:
        return [f"python `{python}` is {version}; wruntime needs Python >= 3.11"]
    wanted = facts.python
    if host.format.name != "docker" and wanted and f"{major}.{minor}" != wanted:
        return [
            f"python `{python}` is {version}, but the bundle's wheels are for Python "
            f"{wanted} (bundle with --python {major}.{minor} or point `python` at "
            f"python{wanted})"
        ]
    return []


def _check_arch(host: TargetHost, facts: BundleFacts) -> list[str]:
    result = host.transport.run("uname -m", check=False)
    machine = normalize_arch(result.stdout) if result.ok else "unknown"
    if machine != facts.machine:
        return [f"architecture is {machine}, but the bundle is built for {facts.machine}"]
    return []


def _nearest_dir(path: str) -> str:
    """Shell: the path itself or its nearest existing ancestor."""
    return f'd={quote(path)}; while [ ! -d "$d" ]; do d=$(dirname "$d"); done'


def _check_disk(host: TargetHost, facts: BundleFacts) -> list[str]:
    result = host.transport.run(
        f"{_nearest_dir(host.workdir)}; df -Pk \"$d\" | awk 'NR==2 {{print $4}}'", check=False
    )
    free_kib = result.stdout.strip()
    if not result.ok or not free_kib.isdigit():
        return [f"cannot tell the free disk space under {host.workdir} ({result.stderr.strip()})"]
    needed = 2 * facts.size + DISK_MARGIN_BYTES
    free = int(free_kib) * 1024
    if free < needed:
        return [
            f"only {_mib(free)} free under {host.workdir}; need {_mib(needed)} "
            f"(twice the bundle's {_mib(facts.size)} plus {_mib(DISK_MARGIN_BYTES)})"
        ]
    return []


def _mib(n: int) -> str:
    """Bytes for people: MiB, or GiB/TiB once that reads better."""
    for unit, scale in (("TiB", 1024**4), ("GiB", 1024**3)):
        if n >= 10 * scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n / 1024**2:.0f} MiB"


def _workdir_writable(host: TargetHost) -> bool:
    result = host.transport.run(f'{_nearest_dir(host.workdir)}; test -w "$d"', check=False)
    return result.ok


def _check_workdir(host: TargetHost) -> list[str]:
    if _workdir_writable(host):
        return []
    if not host.sudo:
        return [
            f"workdir {host.workdir} is not writable by the deploy user; create it and "
            "give it to that user, or set `sudo = true` to let wrctl do it"
        ]
    if not host.transport.run("true", sudo=True, check=False).ok:
        return [
            f"workdir {host.workdir} needs sudo to create, but sudo without a password is refused"
        ]
    return []


def run_checks(host: TargetHost, facts: BundleFacts) -> list[str]:
    """Every check, in order; one line per failure (empty: the host is fit)."""
    problems = _check_python(host, facts)
    problems += _check_arch(host, facts)
    problems += _check_disk(host, facts)
    problems += _check_workdir(host)
    problems += host.format.preflight()
    return problems


def prepare_workdir(host: TargetHost) -> None:
    """Make the workdir exist and belong to the deploy user (with sudo where allowed)."""
    if (
        _workdir_writable(host)
        and host.transport.run(f"mkdir -p {quote(host.workdir)}", check=False).ok
    ):
        return
    workdir = quote(host.workdir)
    owner = '"${SUDO_USER:-$(id -un)}":'
    host.transport.run(f"mkdir -p {workdir} && chown {owner} {workdir}", sudo=True)


def check_and_prepare(host: TargetHost, bundle: Path) -> None:
    """Preflight for a rollout: raise PreflightFailed listing every problem, else make sure
    the workdir is there and the deploy user's."""
    problems = run_checks(host, bundle_facts(bundle))
    if problems:
        raise PreflightFailed(host.transport.name, problems)
    prepare_workdir(host)

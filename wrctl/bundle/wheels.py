"""The dependency wheels of a bundle: the runtime's exact dependency closure (as installed
where wrctl runs) downloaded for the target platform and cached under $WRUNTIME_CACHE/wheels/."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.metadata as md
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from wrctl.config.values import PLATFORM_RE, PYTHON_RE, platform_problem
from wrctl.errors import WrctlError

ROOT_DISTRIBUTION = "wruntime"
DEFAULT_PYTHON = "3.11"
Report = Callable[[str, int, int], None]  # (step, done, total)

_LEGACY = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}


@dataclass(frozen=True)
class Target:
    """The platform tag and Python version a bundle installs on."""

    platform: str  # e.g. manylinux_2_36_x86_64
    python: str  # "3.11"

    def __post_init__(self) -> None:
        problem = platform_problem(self.platform)
        if problem:
            raise WrctlError(f"--platform: {problem}")
        if not PYTHON_RE.fullmatch(self.python):
            raise WrctlError(f"--python: {self.python!r} is not a Python version (expected 3.X)")

    @property
    def machine(self) -> str:
        match = PLATFORM_RE.fullmatch(self.platform)
        assert match is not None
        return match.group(2)

    @property
    def cache_name(self) -> str:
        return f"{self.platform}-cp{self.python.replace('.', '')}"


def default_target(python: str = DEFAULT_PYTHON) -> Target:
    """This machine's manylinux tag (its glibc and architecture) and Python `python`."""
    libc, version = platform.libc_ver()
    if libc != "glibc" or not version:
        raise WrctlError(
            "--platform: this machine has no glibc to derive a manylinux tag from; "
            "pass one, e.g. --platform manylinux_2_17_x86_64"
        )
    major, minor = version.split(".")[:2]
    return Target(f"manylinux_{major}_{minor}_{platform.machine()}", python)


def compatible_platforms(tag: str) -> list[str]:
    """Every platform tag a host of `tag` runs, best first (pip does not expand
    manylinux_2_X by itself): manylinux_2_36 -> 2_35 ... 2_17, manylinux2014, ... 2_5."""
    match = PLATFORM_RE.fullmatch(tag)
    if match is None or match.group(1).startswith("musllinux"):
        return [tag]
    family, arch = match.groups()
    newest = _LEGACY.get(family) or int(family.split("_")[2])
    out: list[str] = []
    for minor in range(newest, 4, -1):
        out.append(f"manylinux_2_{minor}_{arch}")
        out += [f"{name}_{arch}" for name, m in _LEGACY.items() if m == minor]
    return out


@dataclass(frozen=True, order=True)
class Pin:
    name: str  # canonical
    version: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def _marker_env(target: Target) -> dict[str, str]:
    return {
        "python_version": target.python,
        "python_full_version": f"{target.python}.0",
        "implementation_version": f"{target.python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": target.machine,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_version": "",
    }


def dependency_closure(target: Target, root: str = ROOT_DISTRIBUTION) -> list[Pin]:
    """The installed versions of everything `root` needs at run time on `target` (its
    non-extra requirements, recursively; `root` itself excluded), sorted."""
    env = _marker_env(target)
    extras_of: dict[str, set[str]] = {}
    todo: list[tuple[Requirement, str]] = [(Requirement(root), "")]
    while todo:
        req, parent = todo.pop()
        name = canonicalize_name(req.name)
        known = extras_of.get(name)
        if known is not None and set(req.extras) <= known:
            continue
        extras_of[name] = (known or set()) | set(req.extras)
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            raise WrctlError(
                f"{req.name} (needed by {parent or 'the bundle'}) is not installed where wrctl "
                "runs; bundles take the exact dependency versions from this environment"
            ) from None
        for text in dist.requires or []:
            sub = Requirement(text)
            wanted = extras_of[name] or {""}
            if sub.marker is None or any(sub.marker.evaluate({**env, "extra": e}) for e in wanted):
                todo.append((sub, name))
    del extras_of[canonicalize_name(root)]
    return sorted(Pin(name, md.version(name)) for name in extras_of)


def pip_command() -> list[str]:
    """How to run pip: this interpreter's, else the first pip on PATH."""
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for exe in ("pip3", "pip"):
        found = shutil.which(exe)
        if found:
            return [found]
    raise WrctlError(
        "pip is needed to download the bundle's wheels, and neither this Python nor PATH has "
        "it (install pip, e.g. `python3 -m ensurepip`)"
    )


class WheelCache:
    """Downloaded wheels per target, `wheels/<platform>-cpXY/`, with index.json mapping
    `name==version` to the file. A pin is downloaded once; later bundles read the cache."""

    def __init__(self, root: Path, target: Target) -> None:
        self.dir = root / "wheels" / target.cache_name
        self.target = target

    def _index(self) -> dict[str, str]:
        path = self.dir / "index.json"
        return json.loads(path.read_text()) if path.exists() else {}

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def wheels(self, pins: list[Pin], report: Report | None = None) -> list[Path]:
        """The wheel file of every pin, downloading the missing ones in one pip run."""
        with self._locked():
            index = self._index()
            missing = [p for p in pins if not (self.dir / index.get(str(p), "-")).is_file()]
            if missing:
                index.update(self._download(missing, report))
                tmp = self.dir / "index.json.tmp"
                tmp.write_text(json.dumps(index, indent=1, sort_keys=True) + "\n")
                tmp.replace(self.dir / "index.json")
            elif report:
                report("wheels (cached)", len(pins), len(pins))
            return [self.dir / index[str(p)] for p in pins]

    def _download(self, pins: list[Pin], report: Report | None) -> dict[str, str]:
        step = f"downloading {len(pins)} wheels for {self.target.platform}"
        with tempfile.TemporaryDirectory(dir=self.dir, prefix=".download-") as tmp:
            argv = [
                *pip_command(),
                "download",
                "--disable-pip-version-check",
                "--no-deps",
                "--only-binary=:all:",
                "--implementation=cp",
                f"--python-version={self.target.python}",
                f"--abi=cp{self.target.python.replace('.', '')}",
                *[f"--platform={tag}" for tag in compatible_platforms(self.target.platform)],
                "--dest",
                tmp,
                *map(str, pins),
            ]
            _run_pip(argv, step, len(pins), report)
            found: dict[str, str] = {}
            for wheel in sorted(Path(tmp).glob("*.whl")):
                name, version, _, _ = parse_wheel_filename(wheel.name)
                found[str(Pin(name, str(version)))] = wheel.name
                os.replace(wheel, self.dir / wheel.name)
        absent = [str(p) for p in pins if str(p) not in found]
        if absent:
            raise WrctlError(
                f"pip downloaded no wheel for {', '.join(absent)} ({self.target.platform}, "
                f"Python {self.target.python})"
            )
        return found


def _run_pip(argv: list[str], step: str, total: int, report: Report | None) -> None:
    """Run pip download, advancing the progress on each `Collecting` line it prints."""
    done = 0
    output: list[str] = []
    env = {**os.environ, "PIP_NO_INPUT": "1", "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if line.startswith("Collecting ") and report:
                report(step, done, total)
                done += 1
    if proc.returncode != 0:
        tail = "".join(output[-15:]).rstrip()
        raise WrctlError(f"pip download failed ({proc.returncode}):\n{tail}")
    if report:
        report(step, total, total)

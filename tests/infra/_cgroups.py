"""Per-host cgroups for fake systemd hosts, named after the owning pytest PID.

Each systemd host joins its own child cgroup in every hierarchy before it unshares its cgroup
namespace, so its systemd sees that cgroup as the root: two hosts never share `system.slice`,
and stopping a unit on one host can never kill a process of another (or of this machine).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from functools import partial
from pathlib import Path

from tests.infra import _stale
from tests.infra.process import wait_until

CGROUP_ROOT = Path("/sys/fs/cgroup")
_NAME = re.compile(r"^wrtest-(\d+)[a-z]-\d+$")


def own_parents() -> list[Path]:
    """This process's cgroup dir in every mounted hierarchy (v1 controllers, name=, v2)."""
    parents = []
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            mount = CGROUP_ROOT / "unified"
            if not (mount / "cgroup.procs").exists():
                mount = CGROUP_ROOT
        else:
            # name=systemd is mounted as "systemd"; cpu,cpuacct may share one mount.
            mount = CGROUP_ROOT / controllers.removeprefix("name=")
        if (mount / "cgroup.procs").exists():
            parents.append(mount / path.lstrip("/"))
    return parents


def create(name: str) -> list[Path]:
    """Make cgroup `name` under this process's cgroup in every hierarchy; return the dirs."""
    made = []
    try:
        for parent in own_parents():
            path = parent / name
            path.mkdir()
            made.append(path)
            # A new v1 cpuset has no CPUs or memory nodes, and nothing can join it until it has.
            for key in ("cpuset.cpus", "cpuset.mems"):
                if (parent / key).exists():
                    (path / key).write_text((parent / key).read_text())
    except OSError:
        remove(made)
        raise
    return made


def join_command(cgroups: list[Path]) -> str:
    """Shell commands that move the running shell ($$) into each cgroup."""
    return "; ".join(f"echo $$ > {path / 'cgroup.procs'}" for path in cgroups)


def _pids(path: Path) -> list[int]:
    pids: list[int] = []
    for procs in path.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            pids += [int(pid) for pid in procs.read_text().split()]
    return pids


def remove(cgroups: list[Path]) -> None:
    """Kill whatever is still in the cgroups (and their children), then delete them."""
    for path in cgroups:
        if not path.exists():
            continue
        pids = _pids(path)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(partial(_all_gone, pids), 5.0, f"{path} to empty")
        # Children first: systemd made system.slice, init.scope, ... below the host's cgroup.
        for sub in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            if sub.is_dir():
                with contextlib.suppress(OSError):
                    sub.rmdir()
        wait_until(partial(_rmdir, path), 5.0, f"{path} to be removed")


def _all_gone(pids: list[int]) -> bool:
    return all(map(_stale.process_gone, pids))


def _rmdir(path: Path) -> bool:
    # EBUSY for a moment after the last process was reaped: wait_until retries on the error.
    with contextlib.suppress(FileNotFoundError):
        path.rmdir()
    return True


def remove_stale() -> list[Path]:
    """Remove the host cgroups of pytest runs that are gone; return them."""
    stale = []
    for parent in own_parents():
        for path in parent.glob("wrtest-*"):
            match = _NAME.match(path.name)
            if match and path.is_dir() and not _stale.pid_alive(int(match.group(1))):
                stale.append(path)
    remove(stale)
    return stale

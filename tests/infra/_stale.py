"""What a crashed test run leaves behind, and how the next run finds and removes it.

Fixtures keep their files in temp dirs named `<prefix><owner pid>-<random>`, and every
ManagedProcess records `<pid> <start time>` next to its log. When a later run finds such a dir
whose owner is dead, it kills the recorded processes (only if the PID still belongs to the same
process: same start time) with their process groups, and deletes the dir.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
from pathlib import Path

RECORD_SUFFIX = ".wrproc"


def pid_alive(pid: int) -> bool:
    """True while pid runs; a killed process waiting to be reaped (a zombie) counts as dead."""
    return not process_gone(pid)


def process_gone(pid: int) -> bool:
    """True when pid no longer runs (exited, or a zombie waiting to be reaped)."""
    stat = _stat(pid)
    return stat is None or stat[0] in ("Z", "X")


def start_time(pid: int) -> str | None:
    """The kernel's start time of pid (clock ticks since boot): with the PID, an identity."""
    stat = _stat(pid)
    return stat[19] if stat else None


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat fields from the state on (the name before them may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rsplit(")", 1)[1].split()


def record_process(log_path: Path, pid: int) -> None:
    """Note pid (a process group leader) next to its log, for a later run's clean-up."""
    Path(f"{log_path}{RECORD_SUFFIX}").write_text(f"{pid} {start_time(pid)}\n")


def owned_temp_dir(prefix: str) -> Path:
    """A new temp dir `<prefix><pid>-XXXX` owned by this run; stale ones go first."""
    remove_stale_dirs(prefix)
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))
    # Earlier versions of these fixtures (still in use on other branches) look for this file
    # and treat a dir without it as stale.
    (path / "owner.pid").write_text(f"{os.getpid()}\n")
    return path


def remove_stale_dirs(prefix: str, root: Path | None = None) -> list[Path]:
    """Kill the recorded processes of dirs whose owner is dead, delete the dirs, return them."""
    root = root or Path(tempfile.gettempdir())
    removed = []
    for path in root.glob(f"{prefix}*"):
        match = re.match(rf"{re.escape(prefix)}(\d+)-", path.name)
        if not match or pid_alive(int(match.group(1))):
            continue
        for record in path.rglob(f"*{RECORD_SUFFIX}"):
            _kill_recorded(record)
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _kill_recorded(record: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        pid_text, started = record.read_text().split()
        pid = int(pid_text)
        if start_time(pid) == started:  # the same process, not a reused PID
            os.killpg(pid, signal.SIGKILL)

"""A request's scratch files on tmpfs (stdout, stderr, the guest's `/wr-io`) and how the host
reads and writes files the guest can also touch.

The guest may create files, directories and links in `/wr-io`, so the host never follows a
link there, and counts what the directory holds by walking it (see `Slot.usage`).
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from runtime.wire import GUEST_IO_DIR


class GuestFileError(Exception):
    """A `/wr-io` file the host cannot use: missing, not a plain file, or too large."""


@dataclass
class Usage:
    """What a guest has written so far: its stdout, and `/wr-io` plus stderr together."""

    stdout: int
    other: int
    entries: int  # files, directories and links in /wr-io


class Slot:
    """One request's scratch files, reused by the next request once reset."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.stdout = root / "stdout"
        self.stderr = root / "stderr"
        self.io = root / "io"
        self.io.mkdir(exist_ok=True)

    def reset(self) -> None:
        for entry in os.scandir(self.io):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                Path(entry.path).unlink()

    def usage(self, stop_bytes: int, stop_entries: int) -> Usage:
        """Bytes and entries written so far. The walk of /wr-io ends as soon as either passes
        its stop value: a guest making thousands of files must not make each check slow."""
        stdout, other, entries = _size(self.stdout), _size(self.stderr), 0
        pending = [str(self.io)]
        while pending:
            with os.scandir(pending.pop()) as listing:
                for entry in listing:
                    entries += 1
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    else:
                        other += entry.stat(follow_symlinks=False).st_size
                    if other > stop_bytes or entries > stop_entries:
                        return Usage(stdout, other, entries)
        return Usage(stdout, other, entries)


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def io_file(io_dir: Path, name: str) -> Path:
    """The host path of a file the guest names in /wr-io (a plain name, no directories)."""
    if not name or "/" in name or "\0" in name or name in {".", ".."}:
        raise GuestFileError(
            f"body-file {name!r}: expected a plain file name inside {GUEST_IO_DIR}"
        )
    return io_dir / name


def take_guest_file(path: Path, limit: int) -> bytes:
    """Read and remove a file the guest wrote (an outbound body): at most limit bytes, never
    through a link. Removing it gives its room back to the request's quota."""
    shown = f"{GUEST_IO_DIR}/{path.name}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise GuestFileError(f"{shown} does not exist") from None
    except OSError as exc:
        raise GuestFileError(f"{shown} cannot be read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise GuestFileError(f"{shown} is not a plain file")
        if info.st_size > limit:
            raise GuestFileError(
                f"{shown} holds {info.st_size} bytes, over the module's limit of {limit} bytes "
                "(max_body_mb)"
            )
        with open(fd, "rb", closefd=False) as f:
            data = f.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew after fstat
        raise GuestFileError(f"{shown} is over the module's limit of {limit} bytes")
    path.unlink(missing_ok=True)
    return data


def write_host_file(path: Path, data: bytes) -> None:
    """Create a new file for the guest to read (an outbound reply). Never opens what the guest
    put there under the same name: a link it planted would make the host write elsewhere."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise GuestFileError(
            f"{GUEST_IO_DIR}/{path.name} cannot be created: {exc.strerror}"
        ) from None
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)

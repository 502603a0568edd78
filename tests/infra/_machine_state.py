"""What the test infrastructure added to this machine outside any run's temp dirs (accounts,
groups), recorded so that scripts/reset-test-machine.sh removes exactly that and nothing a
developer had before. scripts/apt-install.sh keeps the package list in the same dir."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


def state_dir() -> Path:
    return Path(os.environ.get("WRTEST_STATE_DIR") or "/var/lib/wruntime-test")


def record_created(kind: str, name: str) -> None:
    """Note that the tests created `name` (kind: "user" or "group"): one line per name in
    `<state dir>/created-<kind>s`, written under a lock (parallel runs may create at once)."""
    path = state_dir() / f"created-{kind}s"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as record:
        fcntl.flock(record, fcntl.LOCK_EX)
        record.seek(0)
        if name not in record.read().split():
            record.write(f"{name}\n")

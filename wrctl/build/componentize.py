"""Run componentize-py on staged folders, turning its failures into file:line messages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from wrctl.build.spec import BuildError

# Inside the build, the i-th -p folder is mounted at /i: File "/1/app.py", line 4
_FILE_LINE = re.compile(r'File "/(?P<index>\d+)/(?P<file>[^"]+)", line (?P<line>\d+)')
_REASON = re.compile(r"^(?:\w+\.)*\w+(?:Error|Exception|Exit|Interrupt)\b.*")


def componentize_py() -> str:
    """The componentize-py executable of this environment."""
    beside = Path(sys.executable).parent / "componentize-py"
    if beside.exists():
        return str(beside)
    found = shutil.which("componentize-py")
    if found is None:
        raise BuildError("componentize-py not found: install the wruntime package with its deps")
    return found


def guest_error(output: str, python_path: list[Path]) -> str:
    """The useful part of a failed build: `file:line: Error: message` for the guest's code."""
    guest_tb = output.split("Caused by:", 1)[0]
    if "Traceback" in guest_tb:
        guest_tb = guest_tb[guest_tb.rindex("Traceback") :]
    location = ""
    for match in _FILE_LINE.finditer(guest_tb):
        index = int(match["index"])
        if index < len(python_path):
            location = f"{python_path[index] / match['file']}:{match['line']}"
    lines = [ln.strip() for ln in guest_tb.splitlines() if ln.strip()]
    reason = next((ln for ln in reversed(lines) if _REASON.match(ln)), None)
    if reason is None:
        tail = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
        reason = tail[-1] if tail else "componentize-py failed without output"
    return f"{location}: {reason}" if location else reason


def run_componentize(wit: Path, world: str, entry: str, python_path: list[Path], out: Path) -> None:
    """Build out from the entry module; raise BuildError with the guest's file:line on failure."""
    args = [componentize_py(), "-d", str(wit), "-w", world, "componentize", entry]
    for p in python_path:
        args += ["-p", str(p)]
    args += ["-o", str(out)]
    # Without VIRTUAL_ENV componentize-py does not add the host venv's site-packages: host
    # packages must not leak into guests.
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    proc = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(guest_error(proc.stdout + proc.stderr, python_path))

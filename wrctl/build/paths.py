"""Where the build finds the WIT world and the guest SDK, and where it caches staged files."""

from __future__ import annotations

import os
from pathlib import Path

import wr_sdk


def cache_root() -> Path:
    """`$WRUNTIME_CACHE`, default `~/.cache/wruntime`."""
    return Path(os.environ.get("WRUNTIME_CACHE") or Path.home() / ".cache" / "wruntime")


def wit_dir() -> Path:
    """The wruntime WIT packages: `$WRUNTIME_WIT_DIR`, else `wit/` of the source tree."""
    override = os.environ.get("WRUNTIME_WIT_DIR")
    candidates = [Path(override)] if override else []
    here = Path(__file__).resolve()
    candidates.append(here.parent / "wit")  # an installed wheel that force-includes wit/ here
    candidates.append(here.parents[2] / "wit")  # the source tree
    for candidate in candidates:
        if (candidate / "runtime.wit").is_file():
            return candidate
    raise FileNotFoundError(
        "the wruntime WIT files were not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); set WRUNTIME_WIT_DIR to the repository's wit/ directory"
    )


def sdk_dir() -> Path:
    """The wr_sdk package directory (copied into every guest)."""
    return Path(wr_sdk.__file__).resolve().parent

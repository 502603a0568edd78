"""Stage what a guest imports besides its own code: wr_sdk, pure-Python protobuf, a WIT world."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import google.protobuf

from runtime.engine.capabilities import REGISTRY
from runtime.wire import Capability
from wrctl.build.paths import cache_root, sdk_dir, wit_dir

_SKIP = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc", "codegen")


def tree_digest(paths: Iterable[Path]) -> str:
    """sha256 over the relative names and contents of every file under paths."""
    h = hashlib.sha256()
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            h.update(str(f.relative_to(root.parent)).encode() + b"\0")
            h.update(f.read_bytes())
    return h.hexdigest()


def _atomic_dir(target: Path, fill: Callable[[Path], None]) -> Path:
    """Create target by filling a sibling temp dir and renaming it (concurrent builds agree)."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        fill(tmp)
        os.rename(tmp, target)
    except OSError:
        if not target.is_dir():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def guest_libs() -> Path:
    """A cached folder with wr_sdk and the pure-Python protobuf package, keyed by content.

    Kept across builds on purpose: componentize-py leaves .pyc files there, and later builds
    that find them make smaller components.
    """
    pb_dir = Path(google.protobuf.__file__).resolve().parent
    key = tree_digest([sdk_dir()])[:16] + "-pb" + google.protobuf.__version__

    def fill(tmp: Path) -> None:
        shutil.copytree(sdk_dir(), tmp / "wr_sdk", ignore=_SKIP)
        # The C extension (google/_upb) cannot load in WASM; without it protobuf runs in pure
        # Python. Copying from this environment keeps builds offline.
        shutil.copytree(pb_dir, tmp / "google" / "protobuf", ignore=_SKIP)

    return _atomic_dir(cache_root() / "guest-libs" / key, fill)


def world_for(capabilities: list[Capability], work: Path) -> tuple[Path, str]:
    """(wit dir, world name) for a guest: the base world, or a generated one with imports."""
    base = wit_dir()
    if not capabilities:
        return base, "runtime"
    target = work / "wit"
    shutil.copytree(base, target)
    imports = "".join(
        f"    import {name};\n" for c in sorted(set(capabilities)) for name in REGISTRY[c].imports
    )
    (target / "guest-world.wit").write_text(
        f"package wruntime:runtime@0.1.0;\n\nworld guest {{\n    include runtime;\n{imports}}}\n",
        encoding="utf-8",
    )
    return target, "guest"

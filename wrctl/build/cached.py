"""Build a guest once per content: the component is cached under $WRUNTIME_CACHE/guest-builds.

The key covers everything that shapes the component: the guest's sources, its .proto files,
wr_sdk, the WIT files, protobuf's and componentize-py's versions, and the capabilities.
"""

from __future__ import annotations

import hashlib
from importlib.metadata import version
from pathlib import Path

from runtime.wire import Capability
from wrctl.build import BuildResult, Progress, build_component
from wrctl.build.paths import cache_root, sdk_dir, wit_dir
from wrctl.build.spec import load_spec
from wrctl.build.stage import tree_digest


def build_key(
    guest_dir: Path, protos: list[Path] | None = None, capabilities: list[Capability] | None = None
) -> str:
    spec = load_spec(guest_dir)
    all_protos = sorted({*spec.protos, *(p.resolve() for p in protos or [])})
    parts = [
        tree_digest([guest_dir.resolve()]),
        tree_digest(all_protos) if all_protos else "",
        tree_digest([sdk_dir()]),
        tree_digest([wit_dir()]),
        version("componentize-py"),
        version("protobuf"),
        ",".join(sorted({*spec.capabilities, *(capabilities or [])})),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def build_cached(
    guest_dir: Path,
    *,
    protos: list[Path] | None = None,
    capabilities: list[Capability] | None = None,
    progress: Progress | None = None,
) -> Path:
    """The component for guest_dir, built only when no build of the same inputs is cached."""
    key = build_key(guest_dir, protos, capabilities)
    out = cache_root() / "guest-builds" / f"{guest_dir.resolve().name}-{key[:20]}.wasm"
    if not out.is_file():
        result: BuildResult = build_component(
            guest_dir, out, protos=protos, capabilities=capabilities, progress=progress
        )
        out = result.output
    return out

"""The wheels a bundle ships: the wruntime wheel plus its dependency closure, for a target."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wrctl.bundle.runtime_wheel import runtime_wheel
from wrctl.bundle.wheels import Report, Target, WheelCache, dependency_closure


@dataclass(frozen=True)
class WheelSet:
    """The wheels to ship for `target`, runtime first."""

    target: Target
    files: list[Path]
    packed_cache: Path | None = None  # where tarballs keep the compressed wheels part


def collect_wheels(target: Target, cache: Path, report: Report | None = None) -> WheelSet:
    """Build (or reuse) the runtime wheel and fetch (or reuse) its dependencies' wheels."""
    if report:
        report("runtime wheel", 0, 1)
    own = runtime_wheel(cache)
    if report:
        report("runtime wheel", 1, 1)
    pins = dependency_closure(target)
    deps = WheelCache(cache, target).wheels(pins, report)
    return WheelSet(target, [own, *deps], cache / "wheels" / "packed")

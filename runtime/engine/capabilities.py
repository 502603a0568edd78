"""Check a component's imports against what the engine provides and what the module is granted."""

from __future__ import annotations

from collections.abc import Iterable

from runtime.wire import CAPABILITIES

RUNTIME_PACKAGE = "wruntime:runtime/"
HOST_INTERFACES = {
    "wruntime:runtime/log@0.1.0",
    "wruntime:runtime/config@0.1.0",
    "wruntime:runtime/outbound@0.1.0",
    "wruntime:runtime/types@0.1.0",
}
CAPABILITY_PACKAGES = {f"wruntime:{c}/": c for c in CAPABILITIES}  # WIT package per capability
# Capabilities whose host side this engine implements (their interfaces come in later issues).
IMPLEMENTED: set[str] = set()


class ImportRejected(Exception):
    """A component importing something this engine will not provide to it."""


def check_imports(module: str, imports: Iterable[str], granted: Iterable[str]) -> None:
    """Raise ImportRejected naming the first import the module may not have."""
    grants = set(granted)
    for name in sorted(imports):
        if name.startswith("wasi:") or name in HOST_INTERFACES:
            continue
        capability = next((c for p, c in CAPABILITY_PACKAGES.items() if name.startswith(p)), None)
        if capability is None:
            raise ImportRejected(
                f"module {module}: imports {name}, which wruntime does not provide"
            )
        if capability not in grants:
            raise ImportRejected(
                f"module {module}: imports {name} but is not granted capability "
                f'"{capability}" (add capabilities = ["{capability}"] to its [[module]])'
            )
        if capability not in IMPLEMENTED:
            raise ImportRejected(
                f'module {module}: capability "{capability}" is granted, but this engine '
                "does not provide its host side yet"
            )

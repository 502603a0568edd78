"""What to build from a guest directory: its entry module, .proto files and capabilities."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from runtime.tomlconfig import load_config
from runtime.wire import Capability

SPEC_FILE = "guest.toml"


class GuestSpec(BaseModel):
    """`guest.toml` in a guest directory (optional; every key has a default)."""

    model_config = ConfigDict(extra="forbid")

    module: str = Field(default="app", description="Python module holding the wr_sdk.Module")
    protos: list[Path] = Field(default_factory=list, description="relative to the guest dir")
    capabilities: list[Capability] = Field(default_factory=list)


class BuildError(Exception):
    """A guest that cannot be built; the message names the file and what is wrong."""


def load_spec(guest_dir: Path) -> GuestSpec:
    """Read guest_dir/guest.toml (defaults when absent); proto paths become absolute."""
    if not guest_dir.is_dir():
        raise BuildError(f"{guest_dir}: guest directory not found")
    path = guest_dir / SPEC_FILE
    spec = load_config(path, GuestSpec) if path.is_file() else GuestSpec()
    spec.protos = [(guest_dir / p).resolve() for p in spec.protos]
    entry = guest_dir / f"{spec.module}.py"
    if not entry.is_file() and not (guest_dir / spec.module / "__init__.py").is_file():
        raise BuildError(f"{entry}: entry module not found (set `module` in {path})")
    return spec

"""cluster.toml: the model (pydantic), the loader (file:line:col errors), and the
targets it resolves to (every layer and override applied once)."""

from pathlib import Path

from wrctl.config.loader import load_cluster
from wrctl.config.model import ClusterConfig, ModuleSection, NodeSection, SecretRef
from wrctl.config.targets import (
    HostTarget,
    ManagerTarget,
    NodeTarget,
    Overrides,
    Targets,
    resolve_targets,
)

__all__ = [
    "ClusterConfig",
    "HostTarget",
    "ManagerTarget",
    "ModuleSection",
    "NodeSection",
    "NodeTarget",
    "Overrides",
    "SecretRef",
    "Targets",
    "load_cluster",
    "load_targets",
    "resolve_targets",
]


def load_targets(path: str | Path, overrides: Overrides | None = None) -> Targets:
    """load_cluster then resolve_targets: what every command that reads cluster.toml uses."""
    return resolve_targets(load_cluster(path), overrides)

"""cluster.toml: the model (pydantic) and the loader (tomlkit) with file:line:col errors."""

from wrctl.config.loader import load_cluster
from wrctl.config.model import ClusterConfig, ModuleSection, NodeSection, SecretRef

__all__ = ["ClusterConfig", "ModuleSection", "NodeSection", "SecretRef", "load_cluster"]

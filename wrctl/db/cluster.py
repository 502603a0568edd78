"""Which namespaces and modules of a cluster.toml use the database, and their migrations."""

from __future__ import annotations

from wrctl.config.model import ClusterConfig, ModuleSection
from wrctl.db.files import read_migrations
from wrctl.db.history import ModuleMigrations


def db_modules(config: ClusterConfig) -> dict[str, list[ModuleSection]]:
    """namespace -> its modules granted `db`, by name; namespaces sorted."""
    found: dict[str, list[ModuleSection]] = {}
    for mod in config.module:
        if "db" in mod.capabilities:
            found.setdefault(mod.namespace, []).append(mod)
    return {ns: sorted(found[ns], key=lambda m: m.name) for ns in sorted(found)}


def module_migrations(config: ClusterConfig, mod: ModuleSection) -> ModuleMigrations | None:
    """The module's migrations read from disk (validation checked them), or None."""
    if mod.migrations is None:
        return None
    files = read_migrations(config.source.parent / mod.migrations)
    return ModuleMigrations(mod.name, f"{mod.namespace}.{mod.name}", mod.migrations, files)

"""The database side of a plan: `database.NS` (a namespace's role, schema and password secret)
and `migration.NS.MODULE` (one attribute per migration file: name -> checksum), desired from
cluster.toml and its migrations directories, live from what observe read in the database
[pure but for reading the migration files]."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from runtime.capability_config import db_role
from runtime.engine.capabilities import DB_PASSWORD_SECRET
from wrctl.config.model import ClusterConfig
from wrctl.db.cluster import db_modules, module_migrations
from wrctl.db.files import parse_name
from wrctl.db.history import Entry, NamespaceState, compare
from wrctl.plan.diff import Action, ActionKind
from wrctl.plan.state import ClusterState, Resource

DATABASE = "database"
MIGRATION = "migration"
PASSWORD = f"(secret {DB_PASSWORD_SECRET})"


def desired_resources(config: ClusterConfig) -> list[Resource]:
    resources = []
    for ns, mods in db_modules(config).items():
        role = db_role(ns)
        attrs = {"role": role, "schema": role, "password": PASSWORD}
        resources.append(Resource(f"database.{ns}", DATABASE, attrs))
        for mod in mods:
            found = module_migrations(config, mod)
            if found is not None:
                files = {f.name: f.checksum for f in found.files}
                resources.append(Resource(f"migration.{ns}.{mod.name}", MIGRATION, files))
    return resources


def live_resources(
    config: ClusterConfig, states: Mapping[str, NamespaceState], secrets: frozenset[str]
) -> list[Resource]:
    """The same addresses as desired_resources, as the database and the manager have them: a
    namespace without its role is absent (to create); a module's migrations are always
    present, with the files that ran (pending ones are then `+` in an update)."""
    resources = []
    for ns, mods in db_modules(config).items():
        state = states.get(ns, NamespaceState(role=False, schema=False))
        role = db_role(ns)
        if state.role:
            attrs = {"role": role}
            if state.schema:
                attrs["schema"] = role
            if f"{ns}/{DB_PASSWORD_SECRET}" in secrets:
                attrs["password"] = PASSWORD
            resources.append(Resource(f"database.{ns}", DATABASE, attrs))
        for mod in mods:
            if mod.migrations is not None:
                ran = state.applied.get(mod.name, {})
                files = {name: checksum for name, checksum in ran.values()}
                resources.append(Resource(f"migration.{ns}.{mod.name}", MIGRATION, files))
    return resources


def migration_problems(desired: ClusterState, live: ClusterState) -> list[str]:
    """Why the migrations cannot run as they are (a file changed after it ran, ...): a plan
    error, as apply would refuse them."""
    problems = []
    for address, want in sorted(desired.resources.items()):
        have = live.resources.get(address)
        if want.kind != MIGRATION or have is None:
            continue
        history = compare(address, _versions(want.attributes), _versions(have.attributes))
        problems += history.problems
    return problems


def _versions(files: Mapping[str, str]) -> dict[int, Entry]:
    out = {}
    for name, checksum in files.items():
        version = parse_name(name)
        if isinstance(version, int):
            out[version] = (name, checksum)
    return out


def with_reasons(actions: list[Action]) -> list[Action]:
    """Say how many migrations an action on `migration.*` runs."""
    out = []
    for action in actions:
        if action.resource_kind == MIGRATION and action.kind is not ActionKind.DESTROY:
            count = sum(c.old is None for c in action.changes)
            noun = "migration" if count == 1 else "migrations"
            action = replace(action, reason=f"{count} pending {noun}")
        out.append(action)
    return out

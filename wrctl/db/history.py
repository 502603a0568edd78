"""What a module's migrations directory asks for against what its namespace's wr_migrations
table says ran: the pending versions, or why nothing may run [pure]."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from wrctl.db.files import MigrationFile

Entry = tuple[str, str]  # (file name, sha256:<hex>) of one version


@dataclass(frozen=True)
class ModuleMigrations:
    module: str  # the module's name in its namespace
    label: str  # namespace.module
    directory: str  # as cluster.toml writes it, to name files: "migrations/"
    files: Sequence[MigrationFile]

    @property
    def where(self) -> str:
        return f"{self.label} ({self.directory})"


@dataclass(frozen=True)
class NamespaceState:
    """What the database holds for a namespace (observed)."""

    role: bool
    schema: bool
    applied: dict[str, dict[int, Entry]] = field(default_factory=dict)  # module -> version


@dataclass(frozen=True)
class History:
    pending: list[int]  # versions to run, in order
    problems: list[str]  # non-empty: nothing may run


def compare(where: str, local: Mapping[int, Entry], applied: Mapping[int, Entry]) -> History:
    """`where` names the module's migrations in messages. An applied migration is never run
    again, so a changed, renamed or removed one is a problem, and so is a new version below
    the highest applied (migrations run in version order; a gap is fine)."""
    problems: list[str] = []
    for version, (name, checksum) in sorted(applied.items()):
        if version not in local:
            problems.append(
                f"{where}: {name} was applied but is no longer there; an applied migration "
                "stays (undo it with a new version)"
            )
            continue
        local_name, local_checksum = local[version]
        if local_name != name:
            problems.append(
                f"{where}: version {version} was applied as {name}, now it is {local_name}; "
                "an applied migration keeps its name"
            )
        elif local_checksum != checksum:
            problems.append(
                f"{where}: {name} changed since it was applied ({_short(checksum)} then, "
                f"{_short(local_checksum)} now); it will not run again: put the change in a "
                "new version"
            )
    newest = max(applied, default=0)
    pending = sorted(v for v in local if v not in applied)
    for version in pending:
        if version < newest:
            problems.append(
                f"{where}: {local[version][0]} is pending but {applied[newest][0]} ran "
                f"already; migrations run in version order: give it a version above {newest}"
            )
    return History(pending, problems)


def _short(checksum: str) -> str:
    return checksum[:19]

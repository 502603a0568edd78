"""Run a namespace's migrations as its role: under a Postgres advisory lock keyed by the
namespace, pending files in version order, each in its own transaction, recorded in the
namespace schema's wr_migrations table [I/O: an asyncpg connection as the admin user].

The admin connection switches to the namespace role for each file (SET LOCAL ROLE, and
search_path to its schema), so the tables a migration creates belong to the role the
engines log in as, in the schema only that role reaches."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from runtime.capability_config import db_role
from runtime.db_provision import quote_ident
from wrctl.db.files import MigrationFile, line_of, split_statements, statement_at
from wrctl.db.history import Entry, ModuleMigrations, compare
from wrctl.errors import WrctlError

TABLE = "wr_migrations"
TABLE_DDL = f"""CREATE TABLE IF NOT EXISTS {TABLE} (
    module text NOT NULL,
    version integer NOT NULL,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (module, version)
)"""
MAX_STATEMENT_CHARS = 300


class MigrationError(WrctlError):
    """A migration failed or may not run; the message names the module, file and statement."""


def lock_key(namespace: str) -> int:
    """The advisory lock of a namespace's migrations: a bigint from its name (a hash, so
    it does not collide with small keys an application may use)."""
    digest = hashlib.sha256(b"wruntime-migrations:" + namespace.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _as_role(conn: Any, namespace: str) -> None:
    """Inside a transaction: act as the namespace's role, in its schema."""
    role = quote_ident(db_role(namespace))
    await conn.execute(f"SET LOCAL ROLE {role}; SET LOCAL search_path = {role}")


async def applied(conn: Any, namespace: str) -> dict[str, dict[int, Entry]]:
    """module -> version -> (file name, checksum) of what ran in the namespace ({} when its
    schema or table is not there yet)."""
    table = await conn.fetchval(
        "SELECT to_regclass($1)", f"{quote_ident(db_role(namespace))}.{TABLE}"
    )
    if table is None:
        return {}
    out: dict[str, dict[int, Entry]] = {}
    async with conn.transaction(readonly=True):
        await _as_role(conn, namespace)
        rows = await conn.fetch(f"SELECT module, version, name, checksum FROM {TABLE}")
    for row in rows:
        out.setdefault(row["module"], {})[int(row["version"])] = (row["name"], row["checksum"])
    return out


async def migrate_namespace(
    conn: Any,
    namespace: str,
    modules: Sequence[ModuleMigrations],
    report: Callable[[str, str], None],
) -> list[str]:
    """Run every pending migration of the namespace's modules (its role and schema exist);
    returns the files run ("module/file"). MigrationError when one may not run or fails: the
    files before it stay applied, nothing after it runs."""
    key = lock_key(namespace)
    await conn.execute("SELECT pg_advisory_lock($1)", key)
    try:
        async with conn.transaction():
            await _as_role(conn, namespace)
            await conn.execute(TABLE_DDL)
        # read under the lock: another runner may have applied some while we waited
        done = await applied(conn, namespace)
        ran: list[str] = []
        for mod in modules:
            local = {f.version: (f.name, f.checksum) for f in mod.files}
            history = compare(mod.where, local, done.get(mod.module, {}))
            if history.problems:
                raise MigrationError("\n".join(history.problems))
            by_version = {f.version: f for f in mod.files}
            for version in history.pending:
                migration = by_version[version]
                await _run_one(conn, namespace, mod, migration)
                report(f"migration.{namespace}.{mod.module}", f"{migration.name} applied")
                ran.append(f"{mod.module}/{migration.name}")
        return ran
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", key)


async def _run_one(
    conn: Any, namespace: str, mod: ModuleMigrations, migration: MigrationFile
) -> None:
    try:
        async with conn.transaction():
            await _as_role(conn, namespace)
            if split_statements(migration.sql):  # asyncpg fails on a query of comments only
                await conn.execute(migration.sql)  # the whole file: the server parses it
            await conn.execute(
                f"INSERT INTO {TABLE} (module, version, name, checksum) VALUES ($1, $2, $3, $4)",
                mod.module,
                migration.version,
                migration.name,
                migration.checksum,
            )
    except asyncpg.PostgresError as exc:
        where = await _locate(conn, namespace, migration.sql, exc)
        path = mod.directory.rstrip("/") + "/" + migration.name
        raise MigrationError(
            f"migration {path} of {mod.label} failed{where}: "
            f"{_server_error(exc)}; it was rolled back, and nothing after it ran"
        ) from None


async def _locate(conn: Any, namespace: str, sql: str, exc: asyncpg.PostgresError) -> str:
    """Where the failing statement is (" at line N, statement `...`"), when it can be found: from
    the error's position, else by replaying the file statement by statement in a
    transaction that is rolled back (the statement failing with the same SQLSTATE)."""
    position = getattr(exc, "position", None)
    if position and str(position).isdigit():
        found = statement_at(sql, int(position))
        line = line_of(sql, int(position))
        return f" at line {line}" + (f", statement `{_brief(found.text)}`" if found else "")
    statements = split_statements(sql)
    if len(statements) == 1:
        only = statements[0]
        return f" at line {only.line(sql)}, statement `{_brief(only.text)}`"
    culprit = None

    class _Undo(Exception):
        pass

    try:
        async with conn.transaction():
            await _as_role(conn, namespace)
            for statement in statements:
                try:
                    await conn.execute(statement.text)
                except asyncpg.PostgresError as again:
                    if again.sqlstate == exc.sqlstate:
                        culprit = statement
                    break
            raise _Undo
    except (_Undo, asyncpg.PostgresError):
        pass
    if culprit is None:
        return ""
    return f" at line {culprit.line(sql)}, statement `{_brief(culprit.text)}`"


def _brief(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) > MAX_STATEMENT_CHARS:
        return one_line[: MAX_STATEMENT_CHARS - 1] + "…"
    return one_line


def _server_error(exc: asyncpg.PostgresError) -> str:
    text = f"{exc.sqlstate} {getattr(exc, 'message', None) or exc}"
    detail = getattr(exc, "detail", None)
    hint = getattr(exc, "hint", None)
    text += f" ({detail})" if detail else ""
    return text + (f" (hint: {hint})" if hint else "")

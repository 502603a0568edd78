"""Apply's database step: for each namespace whose modules are granted `db`, its Postgres role
and schema (runtime/db_provision.py), the role's password kept as the namespace secret
`wr-db-password` in the manager, then the modules' pending migrations (wrctl/db/migrate.py).
It runs once the manager answers and before any node moves: a module's new release may need
its tables, and a failed migration must leave every node as it was."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from runtime.db_provision import ensure_namespace, new_password, role_exists
from runtime.engine.capabilities import DB_PASSWORD_SECRET
from wrctl.config.model import ClusterConfig
from wrctl.db.cluster import db_modules, module_migrations
from wrctl.db.connect import FAILURES, DatabaseError, connect_admin, failure_text
from wrctl.db.migrate import migrate_namespace
from wrctl.managerapi import ManagerClient

Report = Callable[[str, str], None]


def provision_and_migrate(
    config: ClusterConfig, client: ManagerClient, report: Report, namespaces: set[str]
) -> None:
    """Make the listed namespaces' roles and schemas, then run their pending migrations.
    Raises the first failure (DatabaseUnreachable, MigrationError, a manager error)."""
    if config.database is None or not namespaces:
        return
    asyncio.run(_run(config, config.database.url, client, report, namespaces))


async def _run(
    config: ClusterConfig, url: str, client: ManagerClient, report: Report, namespaces: set[str]
) -> None:
    conn = await connect_admin(url, "create roles and schemas and run migrations")
    try:
        for ns, mods in db_modules(config).items():
            if ns not in namespaces:
                continue
            try:
                await _provision(conn, ns, client, report)
                found = [m for m in (module_migrations(config, mod) for mod in mods) if m]
                if found:
                    ran = await migrate_namespace(conn, ns, found, report)
                    if not ran:
                        report(f"database.{ns}", "no pending migrations")
            except FAILURES as exc:  # a migration's own failure is a MigrationError already
                raise DatabaseError(
                    f"database {url}, namespace {ns}: {failure_text(exc)} (the [database] url "
                    "user needs CREATEROLE, and CREATE on the database)"
                ) from None
    finally:
        await conn.close()


async def _provision(conn: Any, namespace: str, client: ManagerClient, report: Report) -> None:
    """The role's password is made here, set on the role, and stored in the manager (in that
    order: a password stored but never set would lock the engines out for good). A role
    that already has its stored password keeps it; a role missing while the secret exists
    (a database restored or replaced) gets a new one, as the old value cannot be read back."""
    held = any(e.key == DB_PASSWORD_SECRET for e in client.secrets(namespace))
    password = None
    if not held or not await role_exists(conn, namespace):
        password = new_password()
    await ensure_namespace(conn, namespace, password)
    if password is None:
        report(f"database.{namespace}", "role and schema ready")
        return
    client.set_secret(namespace, DB_PASSWORD_SECRET, password)
    report(
        f"database.{namespace}",
        f"role and schema ready; its new password is stored as secret "
        f"{namespace}/{DB_PASSWORD_SECRET}",
    )

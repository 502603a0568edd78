"""What the database holds for each namespace a cluster.toml gives the `db` capability:
its role and schema, and the migrations that ran [I/O]."""

from __future__ import annotations

import asyncio
from typing import Any

from runtime.capability_config import db_role
from runtime.db_provision import role_exists
from wrctl.config.model import ClusterConfig
from wrctl.db.cluster import db_modules
from wrctl.db.connect import FAILURES, DatabaseError, connect_admin, failure_text
from wrctl.db.history import NamespaceState
from wrctl.db.migrate import applied


def observe_database(config: ClusterConfig) -> dict[str, NamespaceState]:
    """namespace -> what the database holds for it; {} without a db module (and then no
    connection is made). DatabaseUnreachable names the URL when it cannot be asked."""
    namespaces = list(db_modules(config))
    if not namespaces or config.database is None:
        return {}
    return asyncio.run(_observe(config.database.url, namespaces))


async def _observe(url: str, namespaces: list[str]) -> dict[str, NamespaceState]:
    conn = await connect_admin(url, "see which roles, schemas and migrations it has")
    try:
        return await _read(conn, namespaces)
    except FAILURES as exc:
        raise DatabaseError(f"database {url}: {failure_text(exc)}") from None
    finally:
        await conn.close()


async def _read(conn: Any, namespaces: list[str]) -> dict[str, NamespaceState]:
    states = {}
    for ns in namespaces:
        role = await role_exists(conn, ns)
        schema = bool(
            await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", db_role(ns))
        )
        done = await applied(conn, ns) if role and schema else {}
        states[ns] = NamespaceState(role, schema, done)
    return states

"""Namespace roles and schemas (runtime/db_provision.py) against the test PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import asyncpg
import pytest

from runtime.capability_config import db_role
from runtime.db_provision import ensure_namespace, role_exists, scram_verifier
from tests.infra.postgres import PostgresServer

_dbs = itertools.count()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def dsn(postgres: PostgresServer) -> str:
    return postgres.create_database(f"wrtest_prov_{next(_dbs)}_{id(postgres) % 10000}")


async def _as_role(dsn: str, namespace: str, sql: str) -> Any:
    """Run each `;`-separated statement of sql as the namespace's role; the last one's rows."""
    conn = await asyncpg.connect(dsn, user=db_role(namespace))
    try:
        rows = None
        for statement in sql.split(";"):
            rows = await conn.fetch(statement)
        return rows
    finally:
        await conn.close()


def test_each_namespace_reaches_only_its_own_schema(dsn: str) -> None:
    async def main() -> None:
        admin = await asyncpg.connect(dsn)
        try:
            for ns in ("shop-a", "shop-b"):
                await ensure_namespace(admin, ns, "pw-" + ns)
                await ensure_namespace(admin, ns, None)  # idempotent
            assert await role_exists(admin, "shop-a")
        finally:
            await admin.close()
        await _as_role(dsn, "shop-b", "CREATE TABLE items (id int); INSERT INTO items VALUES (1)")
        # b sees its table unqualified: its search_path is its schema
        assert [r[0] for r in await _as_role(dsn, "shop-b", "SELECT id FROM items")] == [1]
        await _as_role(dsn, "shop-a", "CREATE TABLE items (id int)")
        for sql in (
            "SELECT * FROM wr_ns_shop_b.items",
            "SET search_path = wr_ns_shop_b; SELECT * FROM items",
            "INSERT INTO wr_ns_shop_b.items VALUES (2)",
            "CREATE TABLE public.shared (id int)",
        ):
            # a schema the role may not use is skipped in search_path: "does not exist"
            with pytest.raises((asyncpg.InsufficientPrivilegeError, asyncpg.UndefinedTableError)):
                await _as_role(dsn, "shop-a", sql)

    _run(main())


def test_scram_verifier_matches_postgres_format() -> None:
    verifier = scram_verifier("secret", salt=b"0123456789abcdef")
    scheme, rest = verifier.split("$", 1)
    assert scheme == "SCRAM-SHA-256" and rest.startswith("4096:")
    assert verifier == scram_verifier("secret", salt=b"0123456789abcdef")
    assert verifier != scram_verifier("other", salt=b"0123456789abcdef")

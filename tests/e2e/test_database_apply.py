"""wrctl apply with a module granted `db`, on the local target against the test PostgreSQL:
plan shows the namespace and its pending migrations, apply creates the role and schema,
keeps the password in the manager and runs the migration before the node starts; a failing
migration stops the next apply before the node moves, naming the file and statement."""

from __future__ import annotations

import asyncio
import subprocess
from contextlib import closing

import asyncpg
import pytest

from tests.e2e.conftest import COLD, LocalCluster

pytestmark = pytest.mark.slow

V1 = "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);\n"
V2_BROKEN = "ALTER TABLE items ADD COLUMN price numeric(10, 2);\nALTER TABLE itemz ADD x int;\n"


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _table_owner(dsn: str, name: str) -> str | None:
    async def main() -> str | None:
        conn = await asyncpg.connect(dsn)
        try:
            owner = await conn.fetchval(
                "SELECT tableowner FROM pg_tables WHERE schemaname = 'wr_ns_example' "
                "AND tablename = $1",
                name,
            )
            return None if owner is None else str(owner)
        finally:
            await conn.close()

    return asyncio.run(main())


def _column_count(dsn: str, table: str) -> int:
    async def main() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM information_schema.columns "
                    "WHERE table_schema = 'wr_ns_example' AND table_name = $1",
                    table,
                )
            )
        finally:
            await conn.close()

    return asyncio.run(main())


def test_apply_provisions_migrates_and_a_failed_migration_moves_no_node(
    local_cluster: LocalCluster, postgres_dsn: str
) -> None:
    c = local_cluster
    migrations = c.root / "migrations"
    migrations.mkdir()
    (migrations / "V1__create_items.sql").write_text(V1)
    c.template = (
        c.template.replace(
            'capabilities = ["tracing"]',
            'capabilities = ["tracing", "db"]\nmigrations = "migrations/"',
            1,  # the echo module only
        )
        + f'\n[database]\nurl = "{postgres_dsn}"\n'
    )
    c.write()
    plan = c.wrctl("plan", "--detailed-exitcode")
    assert plan.returncode == 2, plan.stderr
    assert "+ database.example {" in plan.stdout
    assert "migration.example.echo will be updated in place (1 pending migration)" in plan.stdout
    assert "+ V1__create_items.sql" in plan.stdout

    _ok(c.wrctl("apply", "--auto-approve", *COLD))
    assert _table_owner(postgres_dsn, "items") == "wr_ns_example"
    listed = _ok(c.wrctl("secrets", "list", "example"))
    assert "wr-db-password" in listed
    assert "No changes." in _ok(c.wrctl("plan"))

    # a broken V2 and a node change in one apply: the migration fails, the node stays
    (migrations / "V2__add_price.sql").write_text(V2_BROKEN)
    c.write(**{'GREETING = "hello"': 'GREETING = "bonjour"'})
    with closing(c.client()) as client:
        before = client.history("local")
    failed = c.wrctl("apply", "--auto-approve")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert (
        "migration migrations/V2__add_price.sql of example.echo failed at line 2, statement "
        "`ALTER TABLE itemz ADD x int;`: 42P01" in failed.stderr
    ), failed.stderr
    assert "not started: the database step failed" in failed.stderr
    with closing(c.client()) as client:
        assert client.history("local") == before  # the node was not touched
        latest = client.history("manager")[0]
    assert latest.status == "failed" and "V2__add_price.sql" in latest.message
    assert "hello" in _ok(c.wrctl("invoke", "example.caller/run"))  # old env still serves
    # V2 was rolled back whole (its first statement left no column) and is still pending
    assert _column_count(postgres_dsn, "items") == 2
    again = c.wrctl("plan")
    assert "+ V2__add_price.sql" in again.stdout, again.stdout + again.stderr

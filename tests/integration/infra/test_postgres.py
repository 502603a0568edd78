"""The PostgreSQL fixture: a real cluster that asyncpg can use."""

from __future__ import annotations

import asyncpg
import pytest

from tests.infra.postgres import PostgresServer


async def test_asyncpg_connects_and_queries(postgres_dsn: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, v text)")
        await conn.execute("INSERT INTO t VALUES (1, 'one') ON CONFLICT (id) DO NOTHING")
        assert await conn.fetchval("SELECT v FROM t WHERE id = 1") == "one"
        assert await conn.fetchval("SELECT current_database()") == postgres_dsn.rsplit("/", 1)[1]
        assert await conn.fetchval("SELECT inet_server_addr()::text") == "127.0.0.1/32"
    finally:
        await conn.close()


async def test_create_database_gives_an_empty_database(postgres: PostgresServer) -> None:
    dsn = postgres.create_database("wrtest_second")
    conn = await asyncpg.connect(dsn)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
    finally:
        await conn.close()
    assert postgres.dsn("x") == f"postgresql://{postgres.user}@127.0.0.1:{postgres.port}/x"


def test_bad_database_names_are_refused(postgres: PostgresServer) -> None:
    with pytest.raises(ValueError, match="database name 'Bad;drop'"):
        postgres.create_database("Bad;drop")
    with pytest.raises(RuntimeError, match="already exists"):
        postgres.create_database("postgres")


def test_data_dir_belongs_to_the_session(postgres: PostgresServer) -> None:
    assert (postgres.data_dir / "postmaster.pid").exists()
    assert postgres.psql("SHOW fsync") == "off"

"""Apply's database step against the test PostgreSQL: namespaces provisioned with their
password kept in the manager, migrations run once, in order, as the namespace's role, under
the namespace's advisory lock; a changed file refused; a failing statement named."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.db_provision import ensure_namespace
from tests.infra.postgres import PostgresServer
from tests.infra.process import free_port
from wrctl.config.model import ClusterConfig
from wrctl.db.connect import DatabaseError, DatabaseUnreachable
from wrctl.db.files import read_migrations
from wrctl.db.history import ModuleMigrations, NamespaceState
from wrctl.db.migrate import MigrationError, applied, lock_key, migrate_namespace
from wrctl.db.observe import observe_database
from wrctl.deploy.database import provision_and_migrate

_dbs = itertools.count()
NS = "shop-a"
ROLE = "wr_ns_shop_a"
V1 = "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);\n"
V2 = "ALTER TABLE items ADD COLUMN price numeric(10, 2);\nINSERT INTO items VALUES (1, 'a', 2.5);\n"


@pytest.fixture
def dsn(postgres: PostgresServer) -> str:
    return postgres.create_database(f"wrtest_mig_{next(_dbs)}_{time.monotonic_ns() % 10**6}")


def _module(tmp_path: Path, files: dict[str, str], name: str = "inventory") -> ModuleMigrations:
    directory = tmp_path / name
    directory.mkdir(exist_ok=True)
    for old in directory.iterdir():
        old.unlink()
    for file_name, sql in files.items():
        (directory / file_name).write_text(sql)
    return ModuleMigrations(name, f"{NS}.{name}", f"{name}/", read_migrations(directory))


def _noted() -> tuple[list[tuple[str, str]], Any]:
    lines: list[tuple[str, str]] = []
    return lines, lambda target, message: lines.append((target, message))


async def _connect(dsn: str) -> Any:
    return await asyncpg.connect(dsn)


async def _migrate(dsn: str, *modules: ModuleMigrations) -> list[str]:
    conn = await _connect(dsn)
    try:
        return await migrate_namespace(conn, NS, modules, _noted()[1])
    finally:
        await conn.close()


async def _provisioned(dsn: str) -> None:
    conn = await _connect(dsn)
    try:
        await ensure_namespace(conn, NS, "pw")
    finally:
        await conn.close()


def test_migrations_run_once_in_order_as_the_namespace_role(tmp_path: Path, dsn: str) -> None:
    async def main() -> None:
        await _provisioned(dsn)
        first = _module(tmp_path, {"V1__create_items.sql": V1})
        assert await _migrate(dsn, first) == ["inventory/V1__create_items.sql"]
        # V2 needs V1's table: it runs after it, and V1 does not run again
        both = _module(tmp_path, {"V1__create_items.sql": V1, "V2__add_price.sql": V2})
        assert await _migrate(dsn, both) == ["inventory/V2__add_price.sql"]
        assert await _migrate(dsn, both) == []  # second run: nothing to do
        conn = await _connect(dsn)
        try:
            owners = await conn.fetch(
                "SELECT tablename, tableowner FROM pg_tables WHERE schemaname = $1", ROLE
            )
            assert {(r[0], r[1]) for r in owners} == {
                ("items", ROLE),
                ("wr_migrations", ROLE),
            }
            done = await applied(conn, NS)
            assert sorted(done["inventory"]) == [1, 2]
            assert done["inventory"][2] == ("V2__add_price.sql", both.files[1].checksum)
        finally:
            await conn.close()
        # the module's own role sees the table, unqualified
        role = await asyncpg.connect(dsn, user=ROLE)
        try:
            assert await role.fetchval("SELECT price FROM items WHERE id = 1") == 2.5
        finally:
            await role.close()

    asyncio.run(main())


def test_two_concurrent_runners_apply_each_file_once(tmp_path: Path, dsn: str) -> None:
    async def main() -> None:
        await _provisioned(dsn)
        mod = _module(tmp_path, {"V1__create_items.sql": V1, "V2__add_price.sql": V2})
        holder = await _connect(dsn)
        try:
            await holder.execute("SELECT pg_advisory_lock($1)", lock_key(NS))
            runners = [asyncio.create_task(_migrate(dsn, mod)) for _ in range(2)]
            deadline = time.monotonic() + 30
            waiting = 0
            while waiting < 2:  # both runners wait on the namespace's lock
                assert time.monotonic() < deadline, f"{waiting} runner(s) waiting on the lock"
                assert not any(r.done() for r in runners), "a runner did not wait for the lock"
                waiting = await holder.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
                )
                await asyncio.sleep(0.05)
            await holder.execute("SELECT pg_advisory_unlock($1)", lock_key(NS))
            results = await asyncio.gather(*runners)
        finally:
            await holder.close()
        # one ran both files, the other found nothing pending once it had the lock
        assert sorted(map(len, results)) == [0, 2]
        conn = await _connect(dsn)
        try:
            assert await conn.fetchval(f"SELECT count(*) FROM {ROLE}.items") == 1
            assert await conn.fetchval(f"SELECT count(*) FROM {ROLE}.wr_migrations") == 2
        finally:
            await conn.close()

    asyncio.run(main())


def test_a_changed_applied_file_is_refused_and_never_rerun(tmp_path: Path, dsn: str) -> None:
    async def main() -> None:
        await _provisioned(dsn)
        await _migrate(dsn, _module(tmp_path, {"V1__create_items.sql": V1}))
        edited = {"V1__create_items.sql": V1 + "-- edited\n", "V2__add_price.sql": V2}
        with pytest.raises(MigrationError) as err:
            await _migrate(dsn, _module(tmp_path, edited))
        message = str(err.value)
        assert "shop-a.inventory (inventory/): V1__create_items.sql changed since" in message
        conn = await _connect(dsn)
        try:  # and V2 did not run either
            assert sorted((await applied(conn, NS))["inventory"]) == [1]
        finally:
            await conn.close()

    asyncio.run(main())


BROKEN_SYNTAX = """\
CREATE TABLE items (id bigint PRIMARY KEY);
-- the next one is misspelt
ALTER TABLE items ADD COLUMN price numerc(10, 2) NOT NUL;
CREATE TABLE later (id int);
"""
BROKEN_AT_RUNTIME = """\
CREATE TABLE items (id bigint PRIMARY KEY);
INSERT INTO items VALUES (1);
INSERT INTO items
  VALUES (1);
CREATE TABLE later (id int);
"""


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        (
            BROKEN_SYNTAX,
            "migration inventory/V1__bad.sql of shop-a.inventory failed at line 3, statement "
            "`ALTER TABLE items ADD COLUMN price numerc(10, 2) NOT NUL;`: 42601 syntax error "
            'at or near "NUL"',
        ),
        (
            BROKEN_AT_RUNTIME,
            "migration inventory/V1__bad.sql of shop-a.inventory failed at line 3, statement "
            "`INSERT INTO items VALUES (1);`: 23505 duplicate key value violates unique "
            'constraint "items_pkey" (Key (id)=(1) already exists.)',
        ),
    ],
)
def test_a_failing_statement_is_named_and_its_file_rolled_back(
    tmp_path: Path, dsn: str, sql: str, expected: str
) -> None:
    async def main() -> None:
        await _provisioned(dsn)
        with pytest.raises(MigrationError) as err:
            await _migrate(dsn, _module(tmp_path, {"V1__bad.sql": sql, "V2__next.sql": V1}))
        assert str(err.value).startswith(expected), str(err.value)
        conn = await _connect(dsn)
        try:  # nothing of the file stays, nothing after it ran, the lock is free
            assert await conn.fetchval("SELECT to_regclass($1)", f"{ROLE}.items") is None
            assert await applied(conn, NS) == {}
            assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(NS))
        finally:
            await conn.close()

    asyncio.run(main())


class _Manager:
    """The two calls the database step makes of the manager."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}

    def secrets(self, namespace: str = "") -> list[pb.SecretEntry]:
        return [
            pb.SecretEntry(namespace=ns, key=key, version=1)
            for ns, key in self.values
            if ns == namespace
        ]

    def set_secret(self, namespace: str, key: str, value: str) -> None:
        self.values[(namespace, key)] = value


def _config(tmp_path: Path, dsn: str, ns: str = NS) -> ClusterConfig:
    _module(tmp_path, {"V1__create_items.sql": V1})
    return ClusterConfig.model_validate(
        {
            "cluster": {"name": "shop"},
            "node": [{"name": "node-a", "host": "local"}],
            "database": {"url": dsn},
            "module": [
                {
                    "namespace": ns,
                    "name": "inventory",
                    "version": "1.0.0",
                    "component": "x.wasm",
                    "capabilities": ["db"],
                    "migrations": "inventory/",
                }
            ],
            "source": tmp_path / "cluster.toml",
        }
    )


async def _verifier(dsn: str, role: str) -> str:
    conn = await _connect(dsn)
    try:
        return str(
            await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
        )
    finally:
        await conn.close()


def test_the_apply_step_keeps_the_password_in_the_manager(tmp_path: Path, dsn: str) -> None:
    ns = "apply-step"  # roles are per PostgreSQL cluster: one no other test makes
    config = _config(tmp_path, dsn, ns)
    assert observe_database(config)[ns] == NamespaceState(role=False, schema=False)
    manager = _Manager()
    lines, report = _noted()
    provision_and_migrate(config, manager, report, {ns})  # type: ignore[arg-type]
    password = manager.values[(ns, "wr-db-password")]
    assert ("migration.apply-step.inventory", "V1__create_items.sql applied") in lines
    assert all(password not in message for _, message in lines)
    verifier = asyncio.run(_verifier(dsn, "wr_ns_apply_step"))
    assert verifier.startswith("SCRAM-SHA-256$")
    state = observe_database(config)[ns]
    assert state.role and state.schema and sorted(state.applied["inventory"]) == [1]
    # a second apply: the stored password stays, the role's too, nothing pending
    lines.clear()
    provision_and_migrate(config, manager, report, {ns})  # type: ignore[arg-type]
    assert manager.values[(ns, "wr-db-password")] == password
    assert asyncio.run(_verifier(dsn, "wr_ns_apply_step")) == verifier
    assert ("database.apply-step", "no pending migrations") in lines


def test_an_unreachable_database_is_named_without_a_password(
    tmp_path: Path, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WR_DB_PASSWORD", "sekrit-admin")
    url = f"postgres://admin@127.0.0.1:{free_port()}/shop"
    with pytest.raises(DatabaseUnreachable) as err:
        observe_database(_config(tmp_path, url))
    message = str(err.value)
    assert message.startswith(f"cannot connect to the database {url} ([database] url)")
    assert "sekrit-admin" not in message


def test_a_file_of_comments_only_is_recorded_as_run(tmp_path: Path, dsn: str) -> None:
    async def main() -> None:
        await _provisioned(dsn)
        mod = _module(tmp_path, {"V1__nothing_yet.sql": "-- placeholder\n"})
        assert await _migrate(dsn, mod) == ["inventory/V1__nothing_yet.sql"]
        assert await _migrate(dsn, mod) == []

    asyncio.run(main())


def test_a_role_gone_while_its_secret_stays_gets_a_new_password(tmp_path: Path, dsn: str) -> None:
    ns = "role-gone"
    config = _config(tmp_path, dsn, ns)
    manager = _Manager()
    manager.values[(ns, "wr-db-password")] = "stale"  # from a database since replaced
    provision_and_migrate(config, manager, _noted()[1], {ns})  # type: ignore[arg-type]
    assert manager.values[(ns, "wr-db-password")] != "stale"
    assert asyncio.run(_verifier(dsn, "wr_ns_role_gone")).startswith("SCRAM-SHA-256$")


def test_an_admin_without_createrole_gets_an_error_not_a_traceback(
    tmp_path: Path, dsn: str, postgres: PostgresServer
) -> None:
    postgres.psql("CREATE ROLE wrtest_weak LOGIN")
    weak = dsn.replace(f"//{postgres.user}@", "//wrtest_weak@")
    with pytest.raises(DatabaseError) as err:
        provision_and_migrate(
            _config(tmp_path, weak, "weak-admin"), _Manager(), _noted()[1], {"weak-admin"}
        )  # type: ignore[arg-type]
    assert str(err.value).startswith(f"database {weak}, namespace weak-admin: 42501 ")

"""Reopening a store keeps everything; a wrong or missing key refuses to start."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import aiohttp
import grpc
import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.manager.config import ManagerConfig
from runtime.manager.errors import StartupError
from runtime.manager.server import ManagerServer
from runtime.manager.store import Tx
from runtime.manager.store.migrations import TABLE_DDL, load_migrations
from runtime.manager.store.sqlite import SqliteBackend
from tests.infra.postgres import PostgresServer
from tests.integration.manager.builders import (
    KEY,
    KEY_ENV,
    OTHER_KEY,
    module,
    registration,
    release,
)
from tests.integration.manager.conftest import fresh_database

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _populate(stub: pb_grpc.ManagerServiceStub) -> str:
    await stub.SetSecret(pb.SetSecretRequest(namespace="example", key="api-key", value="v1"))
    await stub.RegisterEngine(registration(modules=[module(schema=b"fds")]))
    await stub.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1", healthy_modules=[module()]))
    lock = (await stub.AcquireApplyLock(pb.AcquireApplyLockRequest(holder="alice"))).lock.lock_id
    await stub.RecordRelease(pb.RecordReleaseRequest(release=release(), lock_id=lock))
    return lock


async def test_restart_keeps_state(start_manager: Callable[..., ManagerServer]) -> None:
    first = start_manager()
    await first.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.grpc_port}") as channel:
        before_lock = await _populate(pb_grpc.ManagerServiceStub(channel))
        before = await pb_grpc.ManagerServiceStub(channel).GetClusterState(
            pb.GetClusterStateRequest()
        )
    await first.stop()

    second = start_manager()
    await second.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{second.grpc_port}") as channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        after = await stub.GetClusterState(pb.GetClusterStateRequest())
        assert after == before
        assert after.lock.lock_id == before_lock
        table = (await stub.GetRoutingTable(pb.GetRoutingTableRequest())).table
        assert table.version == 2 and [r.healthy for r in table.rules] == [True]
        schema = await stub.GetSchema(
            pb.GetSchemaRequest(namespace="example", module="echo", version="1.0.0")
        )
        assert schema.proto_schema == b"fds"
        again = await stub.RegisterEngine(
            registration("engine-2", secrets=[("example", "api-key")])
        )
        assert dict(again.secrets[0].secrets) == {"api-key": "v1"}


async def test_wrong_key_refuses_to_start(start_manager: Callable[..., ManagerServer]) -> None:
    first = start_manager()
    await first.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{first.grpc_port}") as channel:
        await pb_grpc.ManagerServiceStub(channel).SetSecret(
            pb.SetSecretRequest(namespace="example", key="api-key", value="v1")
        )
    await first.stop()

    with pytest.raises(StartupError) as err:
        await start_manager(key=OTHER_KEY).start()
    message = str(err.value)
    assert KEY_ENV in message and "\n" not in message
    with pytest.raises(StartupError) as err:
        await start_manager(key="").start()
    assert str(err.value).startswith(f"{KEY_ENV} is not set")


@pytest.mark.postgres
async def test_managers_starting_together_on_postgres_migrate_once(
    postgres: PostgresServer,
) -> None:
    with fresh_database(postgres) as dsn:
        config = ManagerConfig(listen_address="127.0.0.1:0", admin_address="127.0.0.1:0", state=dsn)
        managers = [ManagerServer(config, environ={KEY_ENV: KEY}) for _ in range(3)]
        try:
            await asyncio.gather(*(m.start() for m in managers))
            await _check_shared_state(managers)
        finally:
            await asyncio.gather(*(m.stop(grace=0.5) for m in managers))


async def _check_shared_state(managers: list[ManagerServer]) -> None:

    async def migrations(tx: Tx) -> list[int]:
        return [int(r["version"]) for r in await tx.fetch("SELECT version FROM schema_migrations")]

    assert sorted(await managers[0].backend.run(migrations, write=False)) == [1, 2, 3]
    # Every manager serves the same state.
    async with grpc.aio.insecure_channel(f"127.0.0.1:{managers[0].grpc_port}") as channel:
        await pb_grpc.ManagerServiceStub(channel).RegisterEngine(registration())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{managers[2].grpc_port}") as channel:
        engines = await pb_grpc.ManagerServiceStub(channel).ListEngines(pb.ListEnginesRequest())
    assert [e.registration.engine_id for e in engines.engines] == ["engine-1"]


async def test_sqlite_store_of_an_older_version_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    first = load_migrations("sqlite")[0]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(TABLE_DDL)
        conn.executescript(first.sql)
        conn.execute("INSERT INTO schema_migrations VALUES (1, 'init', 'then')")
        conn.execute("INSERT INTO engines VALUES ('old-engine', 'node-a', x'', 1.0, 2.0)")
        conn.commit()

    backend = await SqliteBackend.open(str(path))
    try:

        async def read(tx: Tx) -> tuple[list[int], list[tuple[str, object]]]:
            versions = [
                int(r["version"]) for r in await tx.fetch("SELECT version FROM schema_migrations")
            ]
            engines = [
                (r["engine_id"], r["deregistered_at"])
                for r in await tx.fetch("SELECT engine_id, deregistered_at FROM engines")
            ]
            return sorted(versions), engines

        versions, engines = await backend.run(read, write=False)
    finally:
        await backend.close()
    assert versions == [m.version for m in load_migrations("sqlite")]
    assert engines == [("old-engine", None)]


@pytest.mark.postgres
async def test_lost_database_makes_healthz_503_and_rpcs_unavailable(
    postgres: PostgresServer,
) -> None:
    with fresh_database(postgres) as dsn:
        config = ManagerConfig(listen_address="127.0.0.1:0", admin_address="127.0.0.1:0", state=dsn)
        manager = ManagerServer(config, environ={KEY_ENV: KEY})
        await manager.start()
        try:
            health = f"http://127.0.0.1:{manager.admin_port}/healthz"
            async with aiohttp.ClientSession() as http:
                async with http.get(health) as response:
                    assert response.status == 200
                name = dsn.rsplit("/", 1)[1]
                # Dropping the database under the manager cuts its connections.
                await asyncio.to_thread(postgres.psql, f'DROP DATABASE "{name}" WITH (FORCE)')
                async with http.get(health) as response:
                    assert response.status == 503
                    report = await response.json()
                assert report["ok"] is False and name in report["error"]
            async with grpc.aio.insecure_channel(f"127.0.0.1:{manager.grpc_port}") as channel:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await pb_grpc.ManagerServiceStub(channel).ListEngines(pb.ListEnginesRequest())
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            await manager.stop(grace=0.5)

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
from tests.infra.pki import ClusterPki
from tests.infra.postgres import PostgresServer
from tests.integration.manager.builders import (
    KEY,
    KEY_ENV,
    OTHER_KEY,
    module,
    place,
    registration,
    release,
)
from tests.integration.manager.conftest import fresh_database

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _populate(stub: pb_grpc.ManagerServiceStub, node: pb_grpc.ManagerServiceStub) -> str:
    await stub.SetSecret(pb.SetSecretRequest(namespace="example", key="api-key", value="v1"))
    lock = (await stub.AcquireApplyLock(pb.AcquireApplyLockRequest(holder="alice"))).lock.lock_id
    placed = release()
    placed.secret_grants.add(module="example.echo@1.0.0", namespace="example", key="api-key")
    await stub.RecordRelease(pb.RecordReleaseRequest(release=placed, lock_id=lock))
    await node.RegisterEngine(registration(modules=[module(schema=b"fds")]))
    await node.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1", healthy_modules=[module()]))
    return lock


def _operator(pki: ClusterPki, manager: ManagerServer) -> grpc.aio.Channel:
    return pki.operator_aio_channel(f"127.0.0.1:{manager.grpc_port}")


def _node(pki: ClusterPki, manager: ManagerServer, node: str = "node-a") -> grpc.aio.Channel:
    return pki.node_aio_channel(f"127.0.0.1:{manager.grpc_port}", node)


async def test_restart_keeps_state(
    start_manager: Callable[..., ManagerServer], pki: ClusterPki
) -> None:
    first = start_manager()
    await first.start()
    async with _operator(pki, first) as channel, _node(pki, first) as node_channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        before_lock = await _populate(stub, pb_grpc.ManagerServiceStub(node_channel))
        before = await stub.GetClusterState(pb.GetClusterStateRequest())
    await first.stop()

    second = start_manager()
    await second.start()
    async with _operator(pki, second) as channel, _node(pki, second) as node_channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        node = pb_grpc.ManagerServiceStub(node_channel)
        after = await stub.GetClusterState(pb.GetClusterStateRequest())
        assert after == before
        assert after.lock.lock_id == before_lock
        table = (await stub.GetRoutingTable(pb.GetRoutingTableRequest())).table
        assert table.version == 2 and [r.healthy for r in table.rules] == [True]
        schema = await stub.GetSchema(
            pb.GetSchemaRequest(namespace="example", module="echo", version="1.0.0")
        )
        assert schema.proto_schema == b"fds"
        # The node's authority (release, grants) and its engines' owner survive the restart.
        await node.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1"))
        again = await node.RegisterEngine(
            registration("engine-2", secrets=[("example", "api-key")])
        )
        assert dict(again.secrets[0].secrets) == {"api-key": "v1"}


async def test_wrong_key_refuses_to_start(
    start_manager: Callable[..., ManagerServer], pki: ClusterPki
) -> None:
    first = start_manager()
    await first.start()
    async with _operator(pki, first) as channel:
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
    postgres: PostgresServer, pki: ClusterPki
) -> None:
    with fresh_database(postgres) as dsn:
        config = ManagerConfig(
            listen_address="127.0.0.1:0",
            admin_address="127.0.0.1:0",
            state=dsn,
            tls=pki.manager_config_tls(),
        )
        managers = [ManagerServer(config, environ={KEY_ENV: KEY}) for _ in range(3)]
        try:
            await asyncio.gather(*(m.start() for m in managers))
            await _check_shared_state(managers, pki)
        finally:
            await asyncio.gather(*(m.stop(grace=0.5) for m in managers))


async def _check_shared_state(managers: list[ManagerServer], pki: ClusterPki) -> None:

    async def migrations(tx: Tx) -> list[int]:
        return [int(r["version"]) for r in await tx.fetch("SELECT version FROM schema_migrations")]

    assert sorted(await managers[0].backend.run(migrations, write=False)) == [
        m.version for m in load_migrations("postgres")
    ]
    # Every manager serves the same state (a release recorded on one authorises on another).
    async with _operator(pki, managers[1]) as channel:
        await place(pb_grpc.ManagerServiceStub(channel), "node-a")
    async with _node(pki, managers[0]) as channel:
        await pb_grpc.ManagerServiceStub(channel).RegisterEngine(registration())
    async with _operator(pki, managers[2]) as channel:
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
        conn.execute("INSERT INTO secrets VALUES ('example', 'old', x'00', x'00', 3.0)")
        conn.commit()

    backend = await SqliteBackend.open(str(path))
    try:

        async def read(tx: Tx) -> tuple[list[int], list[tuple[object, ...]], list[int]]:
            versions = [
                int(r["version"]) for r in await tx.fetch("SELECT version FROM schema_migrations")
            ]
            engines = [
                (r["engine_id"], r["deregistered_at"], r["registered_by"])
                for r in await tx.fetch(
                    "SELECT engine_id, deregistered_at, registered_by FROM engines"
                )
            ]
            secrets = [int(r["version"]) for r in await tx.fetch("SELECT version FROM secrets")]
            return sorted(versions), engines, secrets

        versions, engines, secrets = await backend.run(read, write=False)
    finally:
        await backend.close()
    assert versions == [m.version for m in load_migrations("sqlite")]
    # Rows from before identities: no registering identity (their node column owns them),
    # and every existing secret is version 1.
    assert engines == [("old-engine", None, "")]
    assert secrets == [1]


@pytest.mark.postgres
async def test_lost_database_makes_healthz_503_and_rpcs_unavailable(
    postgres: PostgresServer, pki: ClusterPki
) -> None:
    with fresh_database(postgres) as dsn:
        config = ManagerConfig(
            listen_address="127.0.0.1:0",
            admin_address="127.0.0.1:0",
            state=dsn,
            tls=pki.manager_config_tls(),
        )
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
            async with _operator(pki, manager) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await pb_grpc.ManagerServiceStub(channel).ListEngines(pb.ListEnginesRequest())
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        finally:
            await manager.stop(grace=0.5)

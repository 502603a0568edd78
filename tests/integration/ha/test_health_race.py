"""The lost update the health lock prevents: a monitor sweep on manager B that read an engine's
heartbeat just before manager A's heartbeat of it committed must not mark it unhealthy after."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]
import pytest

from runtime.identity import NODE, Identity
from runtime.manager.config import ManagerConfig
from runtime.manager.server import open_state
from runtime.manager.state import engines
from runtime.manager.state.manager_state import ManagerState
from runtime.manager.store import Tx
from tests.infra.pki import ClusterPki
from tests.infra.postgres import PostgresServer
from tests.integration.manager.builders import KEY, KEY_ENV, module, placement, registration
from tests.integration.manager.conftest import FakeClock, fresh_database

pytestmark = pytest.mark.asyncio(loop_scope="session")
NODE_A = Identity("", NODE, "node-a")
HOSTS = frozenset({"127.0.0.1"})


async def _advisory_waiters(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
        )
    finally:
        await conn.close()


async def test_sweep_waits_for_a_heartbeat_in_flight(
    postgres: PostgresServer, pki: ClusterPki
) -> None:
    clock = FakeClock()
    with fresh_database(postgres) as dsn:
        config = ManagerConfig(state=dsn, tls=pki.manager_config_tls())  # 30 s timeouts
        a, b = [await open_state(config, {KEY_ENV: KEY}, clock) for _ in range(2)]
        try:
            await _run(a, b, clock, dsn)
        finally:
            await a.backend.close()
            await b.backend.close()


async def _run(a: ManagerState, b: ManagerState, clock: FakeClock, dsn: str) -> None:
    _, lock = await a.acquire_lock("tester", "", 60)
    await a.record_release(placement("node-a", ["example.echo@1.0.0"]), lock.lock_id)
    await a.register_engine(registration().registration, NODE_A, HOSTS)
    await a.heartbeat("engine-1", [module()], NODE_A)
    clock.advance(31)  # the engine's last heartbeat is now older than the timeout

    # A's next heartbeat is written but not committed yet when B's sweep starts.
    written, commit = asyncio.Event(), asyncio.Event()

    async def heartbeat(tx: Tx) -> None:
        await a._health_lock(tx, exclusive=False)
        await engines.heartbeat(tx, "engine-1", [module()], clock(), a.timeouts, NODE_A)
        written.set()
        await commit.wait()

    beat = asyncio.create_task(a.backend.run(heartbeat))
    await asyncio.wait_for(written.wait(), 10)
    sweep = asyncio.create_task(b.refresh_health())
    # Either the sweep finishes (it did not wait: the bug) or it waits on the health lock.
    deadline = asyncio.get_running_loop().time() + 10
    while not sweep.done() and await _advisory_waiters(dsn) == 0:
        assert asyncio.get_running_loop().time() < deadline, "sweep neither ran nor waited"
        await asyncio.sleep(0.02)
    commit.set()
    await beat
    flips = await sweep
    assert flips == [], "the sweep flipped a route whose engine had just heartbeated"
    table = await b.routing_table()
    assert table is not None and [r.healthy for r in table.rules] == [True]

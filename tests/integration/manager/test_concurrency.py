"""Concurrent writers over real gRPC: no lost update, exactly one lock winner."""

from __future__ import annotations

import asyncio

import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from tests.integration.manager.builders import module, place, registration

pytestmark = pytest.mark.asyncio(loop_scope="session")

ENGINES = 50


async def test_50_concurrent_registrations_lose_nothing(
    stub: pb_grpc.ManagerServiceStub, node: pb_grpc.ManagerServiceStub
) -> None:
    # Every engine shares the "echo" schema row and the version counter with all the others.
    requests = [
        registration(
            f"engine-{i:02d}",
            modules=[module("echo", schema=b"shared"), module(f"m{i}", schema=b"own")],
            port=10000 + i,
        )
        for i in range(ENGINES)
    ]
    await place(
        stub, "node-a", ["example.echo@1.0.0", *(f"example.m{i}@1.0.0" for i in range(ENGINES))]
    )
    await asyncio.wait_for(asyncio.gather(*(node.RegisterEngine(r) for r in requests)), 60)
    await asyncio.wait_for(
        asyncio.gather(
            *(
                node.Heartbeat(
                    pb.HeartbeatRequest(
                        engine_id=f"engine-{i:02d}", healthy_modules=[module("echo")]
                    )
                )
                for i in range(ENGINES)
            )
        ),
        60,
    )
    engines = (await stub.ListEngines(pb.ListEnginesRequest())).engines
    assert len(engines) == ENGINES
    table = (await stub.GetRoutingTable(pb.GetRoutingTableRequest())).table
    assert len(table.rules) == 2 * ENGINES
    # 50 registrations + 50 heartbeats that each flipped one rule: every bump counted once.
    assert table.version == 2 * ENGINES
    assert sum(r.healthy for r in table.rules) == ENGINES


async def test_concurrent_secret_writes_each_move_the_serial(
    stub: pb_grpc.ManagerServiceStub,
) -> None:
    writes = [
        stub.SetSecret(pb.SetSecretRequest(namespace="example", key=f"k{i}", value=str(i)))
        for i in range(ENGINES)
    ]
    await asyncio.wait_for(asyncio.gather(*writes), 60)
    state = await stub.GetClusterState(pb.GetClusterStateRequest())
    assert state.serial == ENGINES
    assert len((await stub.ListSecrets(pb.ListSecretsRequest())).secrets) == ENGINES


async def test_concurrent_lock_requests_have_exactly_one_winner(
    stub: pb_grpc.ManagerServiceStub,
) -> None:
    attempts = [
        stub.AcquireApplyLock(pb.AcquireApplyLockRequest(holder=f"user{i}", reason="apply"))
        for i in range(20)
    ]
    results = await asyncio.wait_for(asyncio.gather(*attempts), 60)
    winners = [r for r in results if r.acquired]
    assert len(winners) == 1
    assert {r.lock.lock_id for r in results} == {winners[0].lock.lock_id}

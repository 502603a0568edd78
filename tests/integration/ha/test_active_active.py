"""Active-active managers on one PostgreSQL: concurrent writes through different managers lose
nothing, the routing version only moves forward, the apply lock has one holder, and a write
through one manager is visible through the others at once."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from tests.integration.ha.conftest import StartManagers
from tests.integration.manager.builders import module, place, placement, registration

pytestmark = pytest.mark.asyncio(loop_scope="session")
ENGINES = 45


async def _table(stub: pb_grpc.ManagerServiceStub) -> pb.RoutingTable:
    return (await stub.GetRoutingTable(pb.GetRoutingTableRequest())).table


async def test_concurrent_registrations_and_heartbeats_through_three_managers(
    managers: StartManagers,
) -> None:
    group = managers(3)
    operators = [group.operator(i) for i in range(3)]
    nodes = [group.node(i) for i in range(3)]
    keys = [f"example.m{i}@1.0.0" for i in range(ENGINES)]
    await place(operators[0], "node-a", ["example.echo@1.0.0", *keys])
    requests = [
        registration(
            f"engine-{i:02d}",
            modules=[module("echo", schema=b"shared"), module(f"m{i}", schema=b"own")],
            port=10000 + i,
        )
        for i in range(ENGINES)
    ]

    # A poller reads the table from each manager in turn while the writes go on.
    seen: list[pb.RoutingTable] = []
    writing = True

    async def poll() -> None:
        turn = 0
        while writing:
            seen.append(await _table(operators[turn % 3]))
            turn += 1

    poller = asyncio.create_task(poll())
    # Engine i registers through manager i % 3 and heartbeats through manager (i + 1) % 3.
    await asyncio.wait_for(
        asyncio.gather(*(nodes[i % 3].RegisterEngine(r) for i, r in enumerate(requests))), 60
    )
    beats = [
        nodes[(i + 1) % 3].Heartbeat(
            pb.HeartbeatRequest(engine_id=f"engine-{i:02d}", healthy_modules=[module("echo")])
        )
        for i in range(ENGINES)
    ]
    await asyncio.wait_for(asyncio.gather(*beats), 60)
    writing = False
    await poller

    # Every bump counted once: 45 registrations + 45 heartbeats that each flipped one rule.
    for operator in operators:
        table = await _table(operator)
        assert table.version == 2 * ENGINES
        assert len(table.rules) == 2 * ENGINES
        assert sum(r.healthy for r in table.rules) == ENGINES
        engines = (await operator.ListEngines(pb.ListEnginesRequest())).engines
        assert len(engines) == ENGINES
    # Polls in time order, from alternating managers: the version never went back, and one
    # version always meant one table.
    versions = [t.version for t in seen]
    assert len(seen) >= 3
    assert versions == sorted(versions)
    by_version: dict[int, bytes] = {}
    for table in seen:
        content = table.SerializeToString(deterministic=True)
        assert by_version.setdefault(table.version, content) == content


async def test_heartbeats_through_rotating_managers_keep_routes_steady(
    managers: StartManagers,
) -> None:
    # Short timeouts: each manager's monitor sweeps every 0.4 s while heartbeats arrive
    # through all three. A sweep that lost a heartbeat would flip a rule (and the version).
    group = managers(3, "engine_heartbeat_timeout_secs = 2\n")
    operator, nodes = group.operator(0), [group.node(i) for i in range(3)]
    await place(operator, "node-a", [f"example.m{i}@1.0.0" for i in range(10)])
    for i in range(10):
        await nodes[0].RegisterEngine(registration(f"e{i}", modules=[module(f"m{i}")]))

    async def beat(i: int, rounds: int) -> None:
        for n in range(rounds):
            request = pb.HeartbeatRequest(engine_id=f"e{i}", healthy_modules=[module(f"m{i}")])
            await nodes[(i + n) % 3].Heartbeat(request)
            await asyncio.sleep(0.3)  # the engines' pace, not synchronisation

    await asyncio.gather(*(beat(i, 1) for i in range(10)))
    steady = await _table(operator)
    assert all(r.healthy for r in steady.rules) and len(steady.rules) == 10
    await asyncio.gather(*(beat(i, 15) for i in range(10)))
    after = await _table(operator)
    assert after.version == steady.version, "a route flipped while its engine heartbeated"
    assert all(r.healthy for r in after.rules)


async def test_apply_lock_has_one_holder_across_managers(managers: StartManagers) -> None:
    group = managers(3)
    operators = [group.operator(i, f"op{i}") for i in range(3)]
    attempts = [
        operators[i % 3].AcquireApplyLock(
            pb.AcquireApplyLockRequest(holder=f"wrctl-{i}", reason="apply", ttl_secs=60)
        )
        for i in range(9)
    ]
    answers = await asyncio.gather(*attempts)
    winners = [a for a in answers if a.acquired]
    assert len(winners) == 1
    lock_id = winners[0].lock.lock_id
    assert {a.lock.lock_id for a in answers} == {lock_id}  # the losers are told the holder

    # The holder's lock works through any manager; another id is refused everywhere.
    request = pb.RecordReleaseRequest(release=placement("node-a"), lock_id=lock_id)
    assert (await operators[2].RecordRelease(request)).serial == 1
    for operator in operators:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await operator.RecordRelease(
                pb.RecordReleaseRequest(release=placement("node-a"), lock_id="not-it")
            )
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    await operators[1].ReleaseApplyLock(pb.ReleaseApplyLockRequest(lock_id=lock_id))
    again = await operators[0].AcquireApplyLock(pb.AcquireApplyLockRequest(holder="next"))
    assert again.acquired


async def test_a_write_through_one_manager_is_read_through_the_others(
    managers: StartManagers,
) -> None:
    group = managers(2)
    a, b = group.operator(0), group.operator(1)
    await place(a, "node-a", ["example.echo@1.0.0"])
    before = (await _table(b)).version
    await group.node(0).RegisterEngine(registration("engine-x"))
    # The registration answered: B's next read (one proxy poll) already has it.
    table = await _table(b)
    assert table.version == before + 1
    assert [r.engine_id for r in table.rules] == ["engine-x"]
    await b.SetSecret(pb.SetSecretRequest(namespace="example", key="k", value="v"))
    keys = (await a.ListSecrets(pb.ListSecretsRequest(namespace="example"))).secrets
    assert [s.key for s in keys] == ["k"]
    listed = (await a.ListManagers(pb.ListManagersRequest())).managers
    assert sorted(m.grpc_address for m in listed) == sorted(group.address(i) for i in range(2))

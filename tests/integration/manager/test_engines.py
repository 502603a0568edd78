"""Engine lifecycle over real gRPC: register, heartbeat, expiry and recovery, deregister."""

from __future__ import annotations

import grpc
import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.manager.server import ManagerServer
from tests.integration.manager.builders import module, registration
from tests.integration.manager.conftest import FakeClock

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _table(stub: pb_grpc.ManagerServiceStub) -> pb.RoutingTable:
    return (await stub.GetRoutingTable(pb.GetRoutingTableRequest())).table


async def _tick(manager: ManagerServer) -> list[tuple[str, bool]]:
    assert manager.monitor is not None
    return await manager.monitor.tick()


async def test_register_lists_engine_and_adds_unhealthy_default_rules(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
) -> None:
    req = registration(modules=[module("echo"), module("caller", version="2.1.0")])
    response = await node.RegisterEngine(req)
    assert response.accepted

    engines = (await stub.ListEngines(pb.ListEnginesRequest())).engines
    assert [e.registration.engine_id for e in engines] == ["engine-1"]
    status = engines[0]
    assert status.healthy
    assert status.registration.node == "node-a"
    assert status.registration.address == "http://127.0.0.1:9100"
    assert sorted(m.module.name for m in status.modules) == ["caller", "echo"]
    assert not any(m.healthy for m in status.modules)

    table = await _table(stub)
    assert table.version == 1
    assert sorted(r.rule_id for r in table.rules) == [
        "engine-1/example.caller@2.1.0",
        "engine-1/example.echo@1.0.0",
    ]
    rule = next(r for r in table.rules if r.destination_module == "echo")
    assert (rule.destination_namespace, rule.destination_version) == ("example", "1.0.0")
    assert rule.engine_address == "http://127.0.0.1:9100"
    assert rule.peer_address == "https://127.0.0.1:9443"
    assert not rule.healthy


async def test_heartbeat_makes_routes_healthy_and_staleness_takes_them_out(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
    manager: ManagerServer,
    clock: FakeClock,
) -> None:
    await node.RegisterEngine(registration(modules=[module("echo"), module("other")]))
    await node.Heartbeat(
        pb.HeartbeatRequest(engine_id="engine-1", healthy_modules=[module("echo")])
    )
    table = await _table(stub)
    assert table.version == 2
    health = {r.destination_module: r.healthy for r in table.rules}
    assert health == {"echo": True, "other": False}

    # Module timeout is 10 s, engine timeout 30 s: the module goes stale first.
    clock.advance(11)
    await node.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1"))
    table = await _table(stub)
    assert table.version == 3
    assert not any(r.healthy for r in table.rules)
    engines = (await stub.ListEngines(pb.ListEnginesRequest())).engines
    assert engines[0].healthy and not any(m.healthy for m in engines[0].modules)

    # It comes back with the next heartbeat that lists it.
    await node.Heartbeat(
        pb.HeartbeatRequest(engine_id="engine-1", healthy_modules=[module("echo")])
    )
    assert {r.destination_module: r.healthy for r in (await _table(stub)).rules}["echo"]

    # No heartbeat for longer than the engine timeout: the monitor takes it out.
    clock.advance(31)
    flips = await _tick(manager)
    assert flips == [("engine-1/example.echo@1.0.0", False)]
    table = await _table(stub)
    assert table.version == 5
    assert not any(r.healthy for r in table.rules)
    assert not (await stub.ListEngines(pb.ListEnginesRequest())).engines[0].healthy
    assert await _tick(manager) == []  # nothing flips twice
    assert (await _table(stub)).version == 5

    await node.Heartbeat(
        pb.HeartbeatRequest(engine_id="engine-1", healthy_modules=[module("echo")])
    )
    table = await _table(stub)
    assert {r.destination_module: r.healthy for r in table.rules} == {"echo": True, "other": False}
    assert (await stub.ListEngines(pb.ListEnginesRequest())).engines[0].healthy


async def test_heartbeat_skips_malformed_entries_but_keeps_liveness(
    stub: pb_grpc.ManagerServiceStub, node: pb_grpc.ManagerServiceStub, clock: FakeClock
) -> None:
    await node.RegisterEngine(registration())
    clock.advance(20)
    bad = pb.ModuleDescriptor(name="echo", namespace="", version="1.0.0")
    await node.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1", healthy_modules=[bad]))
    status = (await stub.ListEngines(pb.ListEnginesRequest())).engines[0]
    assert status.last_heartbeat.seconds == int(clock.now)
    assert not status.modules[0].healthy


async def test_registration_without_peer_address_gives_rules_without_one(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
) -> None:
    req = registration()
    req.registration.peer_address = ""
    await node.RegisterEngine(req)
    (rule,) = (await _table(stub)).rules
    assert rule.peer_address == "" and rule.engine_address == "http://127.0.0.1:9100"


async def test_heartbeat_from_unknown_engine_is_not_found(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await node.Heartbeat(pb.HeartbeatRequest(engine_id="ghost"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "ghost" in (err.value.details() or "")


async def test_reregistration_replaces_modules_and_resets_readiness(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
) -> None:
    await node.RegisterEngine(registration(modules=[module("echo")]))
    await node.Heartbeat(
        pb.HeartbeatRequest(engine_id="engine-1", healthy_modules=[module("echo")])
    )
    await node.RegisterEngine(registration(modules=[module("echo", version="1.1.0")], port=9200))
    table = await _table(stub)
    assert [(r.rule_id, r.healthy, r.engine_address) for r in table.rules] == [
        ("engine-1/example.echo@1.1.0", False, "http://127.0.0.1:9200")
    ]
    engines = (await stub.ListEngines(pb.ListEnginesRequest())).engines
    assert len(engines) == 1
    assert [m.module.version for m in engines[0].modules] == ["1.1.0"]


async def test_deregister_takes_engine_out_and_retention_forgets_it(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
    manager: ManagerServer,
    clock: FakeClock,
) -> None:
    await node.RegisterEngine(registration("engine-1"))
    await node.RegisterEngine(registration("engine-2", port=9101))
    await node.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1", healthy_modules=[module()]))
    assert (await _table(stub)).version == 3

    await node.DeregisterEngine(pb.DeregisterEngineRequest(engine_id="engine-1"))
    engines = (await stub.ListEngines(pb.ListEnginesRequest())).engines
    assert [e.registration.engine_id for e in engines] == ["engine-2"]
    table = await _table(stub)
    # Its route stays, unhealthy: callers hear "no healthy instance", not "unknown module".
    assert [(r.engine_id, r.healthy) for r in table.rules] == [
        ("engine-1", False),
        ("engine-2", False),
    ]
    assert table.version == 4
    for call in (
        node.DeregisterEngine(pb.DeregisterEngineRequest(engine_id="engine-1")),
        node.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1")),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.NOT_FOUND

    # engine-2 keeps heartbeating; engine-1 is forgotten once the retention (3600 s) passed.
    clock.advance(3000)
    await node.Heartbeat(pb.HeartbeatRequest(engine_id="engine-2"))
    clock.advance(601)
    await _tick(manager)
    table = await _table(stub)
    assert [r.engine_id for r in table.rules] == ["engine-2"]
    assert table.version == 5
    engines = (await stub.ListEngines(pb.ListEnginesRequest())).engines
    assert [e.registration.engine_id for e in engines] == ["engine-2"]


async def test_silent_engine_is_forgotten_after_the_retention(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
    manager: ManagerServer,
    clock: FakeClock,
) -> None:
    await node.RegisterEngine(registration())
    clock.advance(3599)
    await _tick(manager)
    assert [e.healthy for e in (await stub.ListEngines(pb.ListEnginesRequest())).engines] == [False]
    clock.advance(2)
    await _tick(manager)
    assert not (await stub.ListEngines(pb.ListEnginesRequest())).engines
    assert not (await _table(stub)).rules
    # Registering again (same id) works as new.
    await node.RegisterEngine(registration())
    assert len((await stub.ListEngines(pb.ListEnginesRequest())).engines) == 1


async def test_registering_again_after_deregistering_revives_the_engine(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
) -> None:
    await node.RegisterEngine(registration())
    await node.DeregisterEngine(pb.DeregisterEngineRequest(engine_id="engine-1"))
    await node.RegisterEngine(registration())
    await node.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1", healthy_modules=[module()]))
    assert [r.healthy for r in (await _table(stub)).rules] == [True]
    assert len((await stub.ListEngines(pb.ListEnginesRequest())).engines) == 1


async def test_get_schema_returns_registered_descriptor_set(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
) -> None:
    await node.RegisterEngine(
        registration(
            modules=[
                module("echo", version="1.0.0", schema=b"schema-1"),
                module("echo", version="1.2.0", schema=b"schema-2"),
            ]
        )
    )
    get = stub.GetSchema
    exact = await get(pb.GetSchemaRequest(namespace="example", module="echo", version="1.0.0"))
    assert exact.proto_schema == b"schema-1"
    latest = await get(pb.GetSchemaRequest(namespace="example", module="echo"))
    assert latest.proto_schema == b"schema-2"
    # Schemas are not repeated in every registration listing.
    engines = (await stub.ListEngines(pb.ListEnginesRequest())).engines
    assert all(not m.module.proto_schema for m in engines[0].modules)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await get(pb.GetSchemaRequest(namespace="example", module="echo", version="9.0.0"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def _bad(**changes: object) -> pb.RegisterEngineRequest:
    req = registration(modules=[module("echo"), module("caller")])
    reg = req.registration
    for field, value in changes.items():
        if field.startswith("module_"):
            setattr(reg.modules[1], field.removeprefix("module_"), value)
        else:
            setattr(reg, field, value)
    return req


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (_bad(engine_id=""), "registration.engine_id"),
        (_bad(address=""), "registration.address"),
        (_bad(address=" "), "registration.address"),
        (_bad(node="Node_A"), "registration.node"),
        (_bad(module_name="Bad_Name"), "registration.modules[1].name"),
        (_bad(module_namespace="x" * 25), "registration.modules[1].namespace"),
        (_bad(module_version="1.0"), "registration.modules[1].version"),
        (_bad(module_digest="md5:abc"), "registration.modules[1].digest"),
        (_bad(module_name="echo"), "registration.modules[1]"),
    ],
)
async def test_bad_registration_is_invalid_argument_naming_field_and_writes_nothing(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
    req: pb.RegisterEngineRequest,
    field: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await node.RegisterEngine(req)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(field + ":")
    assert not (await stub.ListEngines(pb.ListEnginesRequest())).engines
    assert (await _table(stub)).version == 0

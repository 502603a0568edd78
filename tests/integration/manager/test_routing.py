"""Routing table over real gRPC: known_version polling, explicit rules, validation."""

from __future__ import annotations

import grpc
import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from tests.integration.manager.builders import module, registration

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _rule(rule_id: str = "r1", **changes: str) -> pb.RoutingRule:
    rule = pb.RoutingRule(
        rule_id=rule_id,
        source_module="caller",
        source_namespace="example",
        destination_module="inventory",
        destination_namespace="shop",
        destination_version="1.0.0",
        engine_id="engine-9",
        engine_address="http://127.0.0.1:9300",
        peer_address="https://127.0.0.1:9443",
    )
    for field, value in changes.items():
        setattr(rule, field, value)
    return rule


async def _serial(stub: pb_grpc.ManagerServiceStub) -> int:
    return (await stub.GetClusterState(pb.GetClusterStateRequest())).serial


async def test_known_version_polling_returns_nothing_until_the_table_changes(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
) -> None:
    first = await stub.GetRoutingTable(pb.GetRoutingTableRequest())
    assert first.HasField("table") and first.table.version == 0 and not first.table.rules

    await node.RegisterEngine(registration())
    changed = await stub.GetRoutingTable(pb.GetRoutingTableRequest(known_version=0))
    assert changed.table.version == 1 and len(changed.table.rules) == 1

    current = await stub.GetRoutingTable(pb.GetRoutingTableRequest(known_version=1))
    assert not current.HasField("table")

    # A heartbeat that changes nothing does not move the version.
    await node.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1"))
    assert not (await stub.GetRoutingTable(pb.GetRoutingTableRequest(known_version=1))).HasField(
        "table"
    )
    await node.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1", healthy_modules=[module()]))
    moved = await stub.GetRoutingTable(pb.GetRoutingTableRequest(known_version=1))
    assert moved.table.version == 2 and moved.table.rules[0].healthy

    # A caller ahead of (or behind) the manager gets the table too.
    stale = await stub.GetRoutingTable(pb.GetRoutingTableRequest(known_version=99))
    assert stale.table.version == 2


async def test_explicit_rule_is_healthy_and_moves_version_and_serial(
    stub: pb_grpc.ManagerServiceStub,
) -> None:
    serial = await _serial(stub)
    await stub.UpsertRoutingRule(_rule())
    table = (await stub.GetRoutingTable(pb.GetRoutingTableRequest())).table
    assert table.version == 1
    (rule,) = table.rules
    expected = _rule()
    expected.healthy = True
    assert rule == expected
    assert await _serial(stub) == serial + 1

    await stub.UpsertRoutingRule(_rule(engine_address="http://127.0.0.1:9400"))
    table = (await stub.GetRoutingTable(pb.GetRoutingTableRequest())).table
    assert table.version == 2
    assert [r.engine_address for r in table.rules] == ["http://127.0.0.1:9400"]

    await stub.DeleteRoutingRule(pb.DeleteRoutingRuleRequest(rule_id="r1"))
    table = (await stub.GetRoutingTable(pb.GetRoutingTableRequest())).table
    assert table.version == 3 and not table.rules
    assert await _serial(stub) == serial + 3


async def test_explicit_rule_is_not_touched_by_the_health_monitor(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
) -> None:
    await node.RegisterEngine(registration())
    # Force the default rule healthy by hand (the admin override of the reference system).
    await stub.UpsertRoutingRule(
        _rule(
            "engine-1/example.echo@1.0.0",
            destination_module="echo",
            destination_namespace="example",
            engine_id="engine-1",
        )
    )
    await node.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1"))
    table = (await stub.GetRoutingTable(pb.GetRoutingTableRequest())).table
    assert [r.healthy for r in table.rules] == [True]


async def test_deleting_an_unknown_rule_is_not_found(stub: pb_grpc.ManagerServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteRoutingRule(pb.DeleteRoutingRuleRequest(rule_id="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in (err.value.details() or "")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rule_id": ""}, "rule_id"),
        ({"destination_module": "Inventory"}, "destination_module"),
        ({"destination_namespace": ""}, "destination_namespace"),
        ({"destination_version": "latest"}, "destination_version"),
        ({"engine_address": ""}, "engine_address"),
        ({"peer_address": ""}, "peer_address"),
        ({"source_module": "no spaces"}, "source_module"),
    ],
)
async def test_bad_rule_is_invalid_argument_naming_the_field(
    stub: pb_grpc.ManagerServiceStub, changes: dict[str, str], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpsertRoutingRule(_rule(**changes))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(f"{field}:")
    assert not (await stub.GetRoutingTable(pb.GetRoutingTableRequest())).table.rules

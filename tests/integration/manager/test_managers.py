"""Manager liveness rows: ListManagers lists the managers whose heartbeat is within the expiry."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.manager.config import ManagerConfig
from runtime.manager.server import ManagerServer
from tests.infra.pki import ClusterPki
from tests.integration.manager.conftest import FakeClock

pytestmark = pytest.mark.asyncio(loop_scope="session")
EXPIRY = 60.0


async def _live(pki: ClusterPki, manager: ManagerServer, node: str = "") -> list[str]:
    address = f"127.0.0.1:{manager.grpc_port}"
    channel = pki.node_aio_channel(address, node) if node else pki.operator_aio_channel(address)
    async with channel:
        answer = await pb_grpc.ManagerServiceStub(channel).ListManagers(pb.ListManagersRequest())
    return sorted(m.grpc_address for m in answer.managers)


async def test_list_managers_is_the_live_set(
    start_manager: Callable[..., ManagerServer],
    manager_config: ManagerConfig,
    pki: ClusterPki,
    clock: FakeClock,
) -> None:
    # Heartbeats far apart: the test drives them (and the clock) by hand.
    config = manager_config.model_copy(
        update={"manager_heartbeat_secs": 1000.0, "manager_expiry_secs": EXPIRY}
    )
    a = start_manager(config)
    await a.start()
    b = start_manager(config.model_copy(update={"advertise_address": "mgr-b.example:9000"}))
    await b.start()
    a_address = f"127.0.0.1:{a.grpc_port}"
    # Both managers see both rows (the shared store); a node may ask too.
    assert await _live(pki, a) == [a_address, "mgr-b.example:9000"]
    assert await _live(pki, b, node="node-a") == [a_address, "mgr-b.example:9000"]

    # Silent past the expiry: nobody is listed; the next beat of A lists A and deletes B's row.
    clock.advance(EXPIRY + 1)
    assert await _live(pki, a) == []
    assert a.presence is not None
    await a.presence.beat()
    assert await _live(pki, b) == [a_address]
    assert b.presence is not None
    await b.presence.beat()  # B comes back: its row is written again
    assert await _live(pki, a) == [a_address, "mgr-b.example:9000"]

    # A clean stop leaves the set at once.
    await b.stop()
    assert await _live(pki, a) == [a_address]


async def test_expiry_must_exceed_the_heartbeat(manager_config: ManagerConfig) -> None:
    fields = {**manager_config.model_dump(), "manager_heartbeat_secs": 10}
    with pytest.raises(ValueError, match="manager_expiry_secs must be longer"):
        ManagerConfig.model_validate({**fields, "manager_expiry_secs": 10})

"""PostgreSQL restarted under running managers: they answer UNAVAILABLE while it is down and
serve again, without any manual action, once it is back."""

from __future__ import annotations

import json
import urllib.request

import grpc
import pytest

from runtime.api import wruntime_pb2 as pb
from tests.infra.postgres import RestartablePostgres
from tests.infra.process import wait_until
from tests.integration.ha.conftest import Managers, StartManagers
from tests.integration.manager.builders import place, registration

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _healthz(group: Managers, index: int) -> bool:
    url = f"http://127.0.0.1:{group.processes[index].admin_port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(json.loads(response.read())["ok"])
    except OSError:  # 503 (HTTPError is an OSError) or refused
        return False


async def test_managers_reconnect_after_postgres_restarts(
    managers: StartManagers, private_postgres: RestartablePostgres
) -> None:
    dsn = private_postgres.server.create_database("ha_restart")
    group = managers(2, "manager_heartbeat_secs = 0.5\nmanager_expiry_secs = 30\n", dsn=dsn)
    operator = group.operator(0)
    await place(operator, "node-a", ["example.echo@1.0.0"])
    await group.node(0).RegisterEngine(registration("before"))

    private_postgres.stop()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await group.operator(1).GetRoutingTable(pb.GetRoutingTableRequest(), timeout=20)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert not _healthz(group, 0)

    private_postgres.start()
    # Both managers serve again by themselves: health, reads and writes through each.
    wait_until(lambda: _healthz(group, 0) and _healthz(group, 1), 30, "both managers healthy")
    for index in range(2):
        await group.node(index).RegisterEngine(registration(f"after-{index}"), timeout=10)
    for index in range(2):
        request = pb.GetRoutingTableRequest()
        table = (await group.operator(index).GetRoutingTable(request, timeout=10)).table
        assert sorted(r.engine_id for r in table.rules) == ["after-0", "after-1", "before"]
    listed = (await operator.ListManagers(pb.ListManagersRequest(), timeout=10)).managers
    assert len(listed) == 2

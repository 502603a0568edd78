"""NodeService on the control port: relayed to the manager, answered from cache while it is away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from tests.infra.process import wait_until
from tests.integration.proxy.support import Engine, FakeManager, ProxyProcess, rule

DEST = "http://example.echo/pkg.Echo/Say"


def _registration(engine_id: str, engine: Engine) -> pb.RegisterEngineRequest:
    return pb.RegisterEngineRequest(
        registration=pb.EngineRegistration(
            engine_id=engine_id,
            address=engine.address,
            modules=[pb.ModuleDescriptor(name="echo", namespace="example", version="1.0.0")],
        )
    )


@pytest.fixture
def own_manager() -> Iterator[FakeManager]:
    manager = FakeManager()
    manager.start()
    yield manager
    manager.stop()


def test_engine_lifecycle_relayed_and_replayed_after_manager_outage(
    tmp_path: Path, own_manager: FakeManager, fresh_engines: list[Engine]
) -> None:
    engine = fresh_engines[0]
    own_manager.set_rules([rule(engine)])
    proxy = ProxyProcess(tmp_path, own_manager, '[node]\nname = "node-x"')
    proxy.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{proxy.control_port}")
    node = pb_grpc.NodeServiceStub(channel)
    try:
        # Manager up: calls go straight through.
        assert node.RegisterEngine(_registration("e1", engine), timeout=5).accepted
        node.Heartbeat(pb.HeartbeatRequest(engine_id="e1"), timeout=5)
        [relayed] = own_manager.registrations
        assert relayed.registration.engine_id == "e1"
        # What the engine left out the proxy fills in: its peer address and node name.
        assert relayed.registration.peer_address == "https://127.0.0.1:9443"
        assert relayed.registration.node == "node-x"
        assert [h.engine_id for h in own_manager.heartbeats] == ["e1"]

        # Manager away: routing goes on from the cached table, engines are still answered.
        own_manager.stop()
        wait_until(lambda: not proxy.health()["manager_reachable"], 5, "the proxy to notice")
        assert proxy.request(DEST)[0] == 200
        assert node.RegisterEngine(_registration("e2", engine), timeout=10).accepted
        node.Heartbeat(pb.HeartbeatRequest(engine_id="e2"), timeout=10)
        node.Heartbeat(pb.HeartbeatRequest(engine_id="e1"), timeout=10)
        assert proxy.health()["unsynced_registrations"] == ["e2"]

        # Manager back without memory: the proxy replays e2, and re-registers e1 when the
        # manager says it does not know it.
        own_manager.registrations.clear()
        own_manager.heartbeats.clear()
        own_manager.start()
        wait_until(
            lambda: [r.registration.engine_id for r in own_manager.registrations] == ["e2"],
            5,
            "the registration made during the outage to be replayed",
        )
        # The manager records the replay before the proxy has its answer: wait for that too.
        wait_until(
            lambda: proxy.health()["unsynced_registrations"] == [],
            5,
            "the proxy to count the replayed registration as synced",
        )
        node.Heartbeat(pb.HeartbeatRequest(engine_id="e1"), timeout=10)
        ids = sorted(r.registration.engine_id for r in own_manager.registrations)
        assert ids == ["e1", "e2"]
        node.DeregisterEngine(pb.DeregisterEngineRequest(engine_id="e1"), timeout=5)
        assert own_manager.deregistrations == ["e1"]
    finally:
        channel.close()
        proxy.stop()


def test_manager_refusal_is_passed_on(shared_proxy: ProxyProcess) -> None:
    channel = grpc.insecure_channel(f"127.0.0.1:{shared_proxy.control_port}")
    try:
        node = pb_grpc.NodeServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            node.Heartbeat(pb.HeartbeatRequest(engine_id="never-registered"), timeout=5)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as raised:
            node.RegisterEngine(pb.RegisterEngineRequest(), timeout=5)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        channel.close()

"""NodeService on the control port: mutual TLS admitting only this node's engines, relayed to
the manager (its refusals passed on), answered from cache while the manager is away."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import NODE, NODE_TLS_NAME, TlsFiles, channel_options, sync_channel
from tests.infra.pki import ClusterPki
from tests.infra.process import wait_until
from tests.integration.proxy.support import Engine, FakeManager, ProxyProcess, rule
from wrctl.pki import ClusterCA

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
def own_manager(pki: ClusterPki) -> Iterator[FakeManager]:
    manager = FakeManager(pki)
    manager.start()
    yield manager
    manager.stop()


def test_engine_lifecycle_relayed_and_replayed_after_manager_outage(
    tmp_path: Path, pki: ClusterPki, own_manager: FakeManager, fresh_engines: list[Engine]
) -> None:
    engine = fresh_engines[0]
    own_manager.set_rules([rule(engine)])
    proxy = ProxyProcess(tmp_path, own_manager, '[node]\nname = "node-x"')
    proxy.start()
    channel = proxy.control_channel(pki)
    node = pb_grpc.NodeServiceStub(channel)
    try:
        # Manager up: calls go straight through.
        assert node.RegisterEngine(_registration("e1", engine), timeout=5).accepted
        node.Heartbeat(pb.HeartbeatRequest(engine_id="e1"), timeout=5)
        [relayed] = own_manager.registrations
        assert relayed.registration.engine_id == "e1"
        # What the engine left out the proxy fills in: its peer address and node name.
        assert relayed.registration.peer_address == f"https://127.0.0.1:{proxy.peer_port}"
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


def test_manager_refusal_is_passed_on(shared_proxy: ProxyProcess, pki: ClusterPki) -> None:
    channel = shared_proxy.control_channel(pki)
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


def _register_as(channel: grpc.Channel, engine_id: str) -> grpc.RpcError:
    """The error RegisterEngine ends in on `channel` (the test fails if it succeeds)."""
    with channel, pytest.raises(grpc.RpcError) as raised:
        pb_grpc.NodeServiceStub(channel).RegisterEngine(
            pb.RegisterEngineRequest(registration=pb.EngineRegistration(engine_id=engine_id)),
            timeout=10,
        )
    return raised.value


def test_control_port_admits_only_engines_of_its_own_node(
    tmp_path: Path, pki: ClusterPki, manager: FakeManager, shared_proxy: ProxyProcess
) -> None:
    address = f"127.0.0.1:{shared_proxy.control_port}"
    ca = pki.node("node-a").ca_cert_path.read_bytes()

    # No client certificate: refused in the TLS handshake, before any RPC runs.
    anonymous = grpc.secure_channel(
        address, grpc.ssl_channel_credentials(root_certificates=ca), channel_options(NODE_TLS_NAME)
    )
    assert _register_as(anonymous, "intruder-anonymous").code() == grpc.StatusCode.UNAVAILABLE

    # node-a's name and identity, but from another CA: refused in the handshake too.
    other = ClusterCA(tmp_path / "other-ca", "test").node_credentials("node-a", "127.0.0.1")
    for name, data in other.files().items():
        (tmp_path / name).write_bytes(data)
    forged = TlsFiles(tmp_path / "node.crt", tmp_path / "node.key", pki.node().ca_cert_path)
    forged_channel = sync_channel(address, forged, NODE_TLS_NAME)
    assert _register_as(forged_channel, "intruder-forged").code() == grpc.StatusCode.UNAVAILABLE

    # From the cluster CA but with no wruntime identity: UNAUTHENTICATED.
    anon_pem, anon_key = pki.ca.issue("anon", [x509.DNSName(NODE_TLS_NAME)], NODE)
    (tmp_path / "anon.crt").write_bytes(anon_pem)
    (tmp_path / "anon.key").write_bytes(anon_key)
    anon = TlsFiles(tmp_path / "anon.crt", tmp_path / "anon.key", pki.node().ca_cert_path)
    refused = _register_as(sync_channel(address, anon, NODE_TLS_NAME), "intruder-anon")
    assert refused.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "NodeService.RegisterEngine" in refused.details()
    assert "carries no wruntime identity" in refused.details()

    # Certificates of the cluster, but not node-a's: PERMISSION_DENIED naming rpc, caller, why.
    operator = sync_channel(address, pki.operator(), NODE_TLS_NAME)
    refused = _register_as(operator, "intruder-operator")
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "NodeService.RegisterEngine" in refused.details()
    assert "operator 'tester'" in refused.details() and "node role" in refused.details()
    refused = _register_as(shared_proxy.control_channel(pki, "node-b"), "intruder-node-b")
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "node 'node-b' of cluster 'test'" in refused.details()
    assert "only engines of node 'node-a'" in refused.details()
    assert not [r for r in manager.registrations if r.registration.engine_id.startswith("intru")]

    # node-a's own certificate: admitted, and the call reaches the manager.
    with shared_proxy.control_channel(pki) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            pb_grpc.NodeServiceStub(channel).Heartbeat(
                pb.HeartbeatRequest(engine_id="never-registered"), timeout=5
            )
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert "engine never-registered is not registered" in raised.value.details()


def test_proxy_trusts_only_a_manager_certificate(tmp_path: Path, pki: ClusterPki) -> None:
    impostor = FakeManager(pki, serve_as=pki.node("node-z"))  # a node posing as the manager
    impostor.start()
    try:
        proxy = ProxyProcess(tmp_path, impostor).start()
        wait_until(lambda: proxy.health()["manager_error"], 10, "the proxy to give up a poll")
        assert not proxy.health()["manager_reachable"]
        assert impostor.known_versions == []
        proxy.stop()
    finally:
        impostor.stop()


def test_refusals_reach_the_engine_and_a_refused_replay_is_dropped(
    tmp_path: Path, pki: ClusterPki, own_manager: FakeManager, fresh_engines: list[Engine]
) -> None:
    reason = "module example.echo@1.0.0 is not placed on node 'node-a' by its applied release"
    proxy = ProxyProcess(tmp_path, own_manager, '[node]\nname = "node-a"').start()
    channel = proxy.control_channel(pki)
    node = pb_grpc.NodeServiceStub(channel)
    try:
        own_manager.refuse = reason
        with pytest.raises(grpc.RpcError) as raised:
            node.RegisterEngine(_registration("e1", fresh_engines[0]), timeout=5)
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert raised.value.details() == f"manager: {reason}"

        # Accepted while the manager is away, refused when replayed: dropped and logged once;
        # the engine's next heartbeat is told NOT_FOUND, so it registers again itself and
        # meets the refusal (as above) at its own pace.
        own_manager.stop()
        wait_until(lambda: not proxy.health()["manager_reachable"], 5, "the proxy to notice")
        assert node.RegisterEngine(_registration("e2", fresh_engines[0]), timeout=10).accepted
        own_manager.refused.clear()
        own_manager.start()
        wait_until(lambda: own_manager.refused, 10, "the replay to be refused")
        wait_until(
            lambda: "manager refused a replayed registration" in proxy.log(),
            5,
            "the refusal to be logged",
        )
        assert proxy.health()["unsynced_registrations"] == []
        with pytest.raises(grpc.RpcError) as raised:
            node.Heartbeat(pb.HeartbeatRequest(engine_id="e2"), timeout=5)
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert [r.registration.engine_id for r in own_manager.refused] == ["e2"]
        assert reason in proxy.log()
    finally:
        channel.close()
        proxy.stop()


def test_a_stopping_proxy_deregisters_its_engines(
    tmp_path: Path, pki: ClusterPki, own_manager: FakeManager, fresh_engines: list[Engine]
) -> None:
    """Stopped together (a restart), an engine's own deregistration races its proxy's exit:
    the proxy tells the manager itself, so no dead engine stays listed as registered."""
    engine = fresh_engines[0]
    proxy = ProxyProcess(tmp_path, own_manager, '[node]\nname = "node-x"')
    proxy.start()
    channel = proxy.control_channel(pki)
    try:
        node = pb_grpc.NodeServiceStub(channel)
        assert node.RegisterEngine(_registration("e1", engine), timeout=5).accepted
        assert own_manager.deregistrations == []
    finally:
        channel.close()
        proxy.stop()
    assert own_manager.deregistrations == ["e1"]

"""Registration through a NodeService (a real gRPC server in the test): register, heartbeat
with healthy modules, secrets into config, deregister on SIGTERM."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.engine.component_cache import file_sha256
from tests.infra.process import wait_until
from tests.integration.engine.conftest import REPO, module_toml

pytestmark = pytest.mark.slow


class FakeNode(pb_grpc.NodeServiceServicer):
    def __init__(self) -> None:
        self.registrations: list[pb.EngineRegistration] = []
        self.heartbeats: list[pb.HeartbeatRequest] = []
        self.deregistered: list[str] = []
        self.lock = threading.Lock()

    def RegisterEngine(self, request: pb.RegisterEngineRequest, context: Any) -> Any:
        with self.lock:
            self.registrations.append(request.registration)
        return pb.RegisterEngineResponse(
            accepted=True,
            secrets=[pb.NamespaceSecrets(namespace="example", secrets={"api-key": "s3cret"})],
        )

    def Heartbeat(self, request: pb.HeartbeatRequest, context: Any) -> Any:
        with self.lock:
            self.heartbeats.append(request)
        return pb.HeartbeatResponse()

    def DeregisterEngine(self, request: pb.DeregisterEngineRequest, context: Any) -> Any:
        with self.lock:
            self.deregistered.append(request.engine_id)
        return pb.DeregisterEngineResponse()


@pytest.fixture
def fake_node() -> Iterator[tuple[FakeNode, str]]:
    node = FakeNode()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    pb_grpc.add_NodeServiceServicer_to_server(node, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield node, f"http://127.0.0.1:{port}"
    server.stop(0)


def test_register_heartbeat_secrets_deregister(  # type: ignore[no-untyped-def]
    components, start_engine, fake_node
) -> None:
    node, address = fake_node
    modules = module_toml(
        "echo", components["echo"], schema_path=str(REPO / "examples/echo/schemas/echo.proto")
    )
    modules += module_toml(
        "testkit",
        components["testkit"],
        env={"GREETING": '"hi"', "API_KEY": '{ secret = "api-key" }'},
    )
    engine = start_engine(modules, control=address)

    wait_until(lambda: node.heartbeats, 30, "a heartbeat")
    reg = node.registrations[0]
    assert reg.address == engine.base
    assert reg.node == "node-test"
    assert reg.runtime_version
    assert [(s.namespace, s.key) for s in reg.secrets] == [("example", "api-key")]
    by_name = {m.name: m for m in reg.modules}
    assert by_name["echo"].digest == f"sha256:{file_sha256(components['echo'])}"
    assert (by_name["echo"].namespace, by_name["echo"].version) == ("example", "1.0.0")
    fds = descriptor_pb2.FileDescriptorSet.FromString(by_name["echo"].proto_schema)
    assert [f.name for f in fds.file] == ["echo.proto"]
    assert fds.file[0].service[0].name == "EchoService"
    assert by_name["testkit"].proto_schema == b""
    first = node.heartbeats[0]
    assert first.engine_id == reg.engine_id
    assert sorted(m.name for m in first.healthy_modules) == ["echo", "testkit"]

    status, _, body = engine.call("example.testkit", "/config")
    assert status == 200
    assert json.loads(body)["all"] == {"API_KEY": "s3cret", "GREETING": "hi"}

    count = len(node.heartbeats)
    wait_until(lambda: len(node.heartbeats) > count, 10, "the next heartbeat (every 3 s)")

    assert engine.process.stop() == 0
    assert node.deregistered == [reg.engine_id]


def test_engine_serves_while_the_control_plane_is_away_then_registers(  # type: ignore[no-untyped-def]
    components, start_engine
) -> None:
    from tests.infra.process import free_port

    port = free_port()
    engine = start_engine(
        module_toml("testkit", components["testkit"]), control=f"http://127.0.0.1:{port}"
    )
    status, _, body = engine.call("example.testkit", "/echo", b"standalone")
    assert (status, body) == (200, b"standalone")

    node = FakeNode()  # the control plane comes up late, on the configured address
    server = grpc.server(futures.ThreadPoolExecutor(2))
    pb_grpc.add_NodeServiceServicer_to_server(node, server)
    assert server.add_insecure_port(f"127.0.0.1:{port}") == port
    server.start()
    try:
        wait_until(lambda: node.heartbeats, 20, "registration once the control plane is up")
        assert [m.name for m in node.registrations[0].modules] == ["testkit"]
    finally:
        server.stop(0)

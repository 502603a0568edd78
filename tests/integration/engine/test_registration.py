"""Registration through a NodeService (a real gRPC server in the test, serving mutual TLS
with the node certificate as the proxy does): register, heartbeat with healthy modules,
secrets into config, deregister on SIGTERM; refusals logged with the manager's reason; only a
node certificate passes as the proxy."""

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
from runtime.identity import NODE, TlsFiles, authorize, server_credentials
from tests.infra.pki import CLUSTER, ClusterPki
from tests.infra.process import free_port, wait_until
from tests.integration.engine.conftest import REPO, TRACING, module_toml

pytestmark = pytest.mark.slow


class FakeNode(pb_grpc.NodeServiceServicer):
    def __init__(self, refuse: str = "") -> None:
        self.registrations: list[pb.EngineRegistration] = []
        self.heartbeats: list[pb.HeartbeatRequest] = []
        self.deregistered: list[str] = []
        self.callers: list[str] = []
        self.refuse = refuse
        self.lock = threading.Lock()

    def RegisterEngine(self, request: pb.RegisterEngineRequest, context: Any) -> Any:
        who = authorize(context, CLUSTER, frozenset((NODE,)), "NodeService.RegisterEngine")
        with self.lock:
            self.callers.append(who.uri)
        if self.refuse:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, self.refuse)
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


def serve_node(node: FakeNode, serve_as: TlsFiles, port: int = 0) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(4))
    pb_grpc.add_NodeServiceServicer_to_server(node, server)
    bound = server.add_secure_port(f"127.0.0.1:{port}", server_credentials(serve_as))
    server.start()
    return server, bound


@pytest.fixture
def fake_node(pki: ClusterPki) -> Iterator[tuple[FakeNode, str]]:
    node = FakeNode()
    server, port = serve_node(node, pki.node("node-test"))
    yield node, f"http://127.0.0.1:{port}"
    server.stop(0)


def test_register_heartbeat_secrets_deregister(  # type: ignore[no-untyped-def]
    components, start_engine, fake_node
) -> None:
    node, address = fake_node
    modules = module_toml(
        "echo",
        components["echo"],
        schema_path=str(REPO / "examples/echo/schemas/echo.proto"),
        capabilities=TRACING,
    )
    modules += module_toml(
        "testkit",
        components["testkit"],
        env={"GREETING": '"hi"', "API_KEY": '{ secret = "api-key" }'},
    )
    engine = start_engine(modules, control=address)

    wait_until(lambda: node.heartbeats, 30, "a heartbeat")
    reg = node.registrations[0]
    assert node.callers[0] == "wruntime://test/node/node-test"  # it presents the node cert
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
    components, start_engine, pki
) -> None:
    port = free_port()
    engine = start_engine(
        module_toml("testkit", components["testkit"]), control=f"http://127.0.0.1:{port}"
    )
    status, _, body = engine.call("example.testkit", "/echo", b"standalone")
    assert (status, body) == (200, b"standalone")

    node = FakeNode()  # the control plane comes up late, on the configured address
    server, bound = serve_node(node, pki.node("node-test"), port)
    assert bound == port
    try:
        wait_until(lambda: node.heartbeats, 20, "registration once the control plane is up")
        assert [m.name for m in node.registrations[0].modules] == ["testkit"]
    finally:
        server.stop(0)


def test_refusal_is_logged_with_the_managers_reason(  # type: ignore[no-untyped-def]
    components, start_engine, pki
) -> None:
    reason = "manager: module example.testkit@1.0.0 is not placed on node 'node-test'"
    node = FakeNode(refuse=reason)
    server, port = serve_node(node, pki.node("node-test"))
    try:
        engine = start_engine(
            module_toml("testkit", components["testkit"]), control=f"http://127.0.0.1:{port}"
        )

        def refusal_logged() -> bool:
            return any(
                r.get("msg") == "registration refused; retrying"
                and r.get("level") == "error"
                and reason in r.get("error", "")
                for r in engine.log_records()
            )

        wait_until(refusal_logged, 30, "the refusal in the engine's log")
        assert engine.call("example.testkit", "/echo", b"still serving")[0] == 200
    finally:
        server.stop(0)


def test_engine_talks_only_to_a_node_certificate(  # type: ignore[no-untyped-def]
    components, start_engine, pki
) -> None:
    node = FakeNode()
    server, port = serve_node(node, pki.manager())  # a manager certificate, not a node's
    try:
        engine = start_engine(
            module_toml("testkit", components["testkit"]), control=f"http://127.0.0.1:{port}"
        )
        wait_until(
            lambda: any(
                r.get("msg") == "registration failed; retrying" for r in engine.log_records()
            ),
            30,
            "a failed registration attempt",
        )
        assert node.callers == [] and node.registrations == []
    finally:
        server.stop(0)

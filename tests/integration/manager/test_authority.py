"""Attacks on the manager's control plane over real mutual TLS: each test fails if the control
it names (handshake, roles, cluster, release-bound authority, engine ownership) were removed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import MANAGER_TLS_NAME, TlsFiles, aio_channel, channel_options
from runtime.manager.config import ManagerConfig
from runtime.manager.server import ManagerServer
from tests.infra.pki import ClusterPki
from tests.integration.manager.builders import (
    digest,
    module,
    place,
    placement,
    record,
    registration,
)
from tests.integration.manager.conftest import NodeStubs
from wrctl.pki import ClusterCA

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _refused(call: Awaitable[object], code: grpc.StatusCode, *words: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    details = err.value.details() or ""
    assert err.value.code() == code, details
    for word in words:
        assert word in details, details
    return details


def _files(directory: Path, cert: bytes, key: bytes, ca: bytes) -> TlsFiles:
    directory.mkdir(parents=True)
    for name, data in (("c.crt", cert), ("c.key", key), ("ca.crt", ca)):
        (directory / name).write_bytes(data)
    return TlsFiles(directory / "c.crt", directory / "c.key", directory / "ca.crt")


def _issued(pki: ClusterPki, directory: Path, uri: str | None, role: str = "operator") -> TlsFiles:
    """A certificate from the cluster CA carrying `uri` (or no identity at all)."""
    names: list[x509.GeneralName] = [x509.DNSName("somewhere")]
    if uri is not None:
        names.append(x509.UniformResourceIdentifier(uri))
    cert, key = pki.ca.issue("odd", names, role)
    return _files(directory, cert, key, pki.ca.ca_pem)


def _handled(manager: ManagerServer, method: str) -> float:
    """How many calls of `method` reached the service (any status)."""
    total = 0.0
    for metric in manager.metrics.rpcs.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels["method"] == method:
                total += sample.value
    return total


def _refusals(manager: ManagerServer, method: str, code: str) -> float | None:
    labels = {"method": method, "code": code}
    return manager.metrics.registry.get_sample_value("wr_manager_rpc_refusals_total", labels)


# ── the handshake and the identity ───────────────────────────────────────


async def test_caller_without_a_client_certificate_gets_no_answer(
    manager: ManagerServer, pki: ClusterPki
) -> None:
    ca = pki.operator().ca_cert_path.read_bytes()
    credentials = grpc.ssl_channel_credentials(root_certificates=ca)
    address = f"127.0.0.1:{manager.grpc_port}"
    async with grpc.aio.secure_channel(
        address, credentials, channel_options(MANAGER_TLS_NAME)
    ) as channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        await _refused(
            stub.ListSecrets(pb.ListSecretsRequest(), timeout=5), grpc.StatusCode.UNAVAILABLE
        )
    assert _handled(manager, "ListSecrets") == 0  # refused in the handshake, before any RPC


async def test_certificate_of_another_ca_is_refused_in_the_handshake(
    manager: ManagerServer, pki: ClusterPki, tmp_path: Path
) -> None:
    rogue = ClusterCA(tmp_path / "rogue-ca", "test")  # same cluster name, other key
    creds = rogue.operator_credentials("mallory", file_stem="mallory")
    # It trusts the real CA for the server; only its own certificate is foreign.
    files = _files(tmp_path / "mallory", creds.cert_pem, creds.key_pem, pki.ca.ca_pem)
    async with aio_channel(f"127.0.0.1:{manager.grpc_port}", files, MANAGER_TLS_NAME) as channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        await _refused(
            stub.ListSecrets(pb.ListSecretsRequest(), timeout=5), grpc.StatusCode.UNAVAILABLE
        )
        await _refused(stub.RegisterEngine(registration(), timeout=5), grpc.StatusCode.UNAVAILABLE)
    assert _handled(manager, "ListSecrets") == _handled(manager, "RegisterEngine") == 0


async def test_ca_certificate_without_identity_is_unauthenticated(
    manager: ManagerServer, pki: ClusterPki, tmp_path: Path
) -> None:
    files = _issued(pki, tmp_path / "anonymous", None)
    async with aio_channel(f"127.0.0.1:{manager.grpc_port}", files, MANAGER_TLS_NAME) as channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        await _refused(
            stub.ListSecrets(pb.ListSecretsRequest()),
            grpc.StatusCode.UNAUTHENTICATED,
            "ListSecrets",
        )
        # The unimplemented RPCs too: nothing answers an anonymous caller.
        await _refused(stub.ListManagers(pb.ListManagersRequest()), grpc.StatusCode.UNAUTHENTICATED)
    assert _refusals(manager, "ListSecrets", "UNAUTHENTICATED") == 1


@pytest.fixture
async def named_cluster(
    start_manager: Callable[..., ManagerServer], manager_config: ManagerConfig
) -> ManagerServer:
    server = start_manager(manager_config.model_copy(update={"cluster": "test"}))
    await server.start()
    return server


async def test_identity_of_another_cluster_is_denied_when_the_manager_names_its_cluster(
    named_cluster: ManagerServer, pki: ClusterPki, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{named_cluster.grpc_port}"
    files = _issued(pki, tmp_path / "eve", "wruntime://other/operator/eve")
    async with aio_channel(address, files, MANAGER_TLS_NAME) as channel:
        await _refused(
            pb_grpc.ManagerServiceStub(channel).ListSecrets(pb.ListSecretsRequest()),
            grpc.StatusCode.PERMISSION_DENIED,
            "ListSecrets",
            "'eve'",
            "cluster 'test'",
        )
    async with pki.operator_aio_channel(address) as channel:  # this cluster's operator
        state = await pb_grpc.ManagerServiceStub(channel).GetClusterState(
            pb.GetClusterStateRequest()
        )
    assert state.cluster == "test"


# ── roles ────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("method", "request_"),
    [
        ("ListSecrets", pb.ListSecretsRequest()),
        ("SetSecret", pb.SetSecretRequest(namespace="example", key="k", value="v")),
        (
            "UpsertRoutingRule",
            pb.RoutingRule(
                rule_id="hijack",
                destination_namespace="example",
                destination_module="echo",
                destination_version="1.0.0",
                engine_address="http://127.0.0.1:6666",
                peer_address="https://127.0.0.1:9443",
            ),
        ),
        ("RecordRelease", pb.RecordReleaseRequest(release=placement("node-a"))),
        ("AcquireApplyLock", pb.AcquireApplyLockRequest(holder="node")),
        ("ListEngines", pb.ListEnginesRequest()),
    ],
)
async def test_node_may_not_call_operator_rpcs(
    manager: ManagerServer, node_stub: NodeStubs, method: str, request_: object
) -> None:
    details = await _refused(
        getattr(node_stub("node-a"), method)(request_),
        grpc.StatusCode.PERMISSION_DENIED,
        method,
        "node 'node-a'",
        "operator role may call it",
    )
    assert "of cluster 'test'" in details
    assert _refusals(manager, method, "PERMISSION_DENIED") == 1


async def test_operator_may_not_act_as_an_engine(stub: pb_grpc.ManagerServiceStub) -> None:
    await place(stub, "node-a")
    await _refused(
        stub.RegisterEngine(registration()),
        grpc.StatusCode.PERMISSION_DENIED,
        "RegisterEngine",
        "operator 'tester'",
        "only the node role",
    )
    await _refused(
        stub.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1")),
        grpc.StatusCode.PERMISSION_DENIED,
    )


async def test_manager_role_reads_but_does_not_write(
    manager: ManagerServer, pki: ClusterPki
) -> None:
    files = pki.manager()
    async with aio_channel(f"127.0.0.1:{manager.grpc_port}", files, MANAGER_TLS_NAME) as channel:
        peer = pb_grpc.ManagerServiceStub(channel)
        await peer.GetClusterState(pb.GetClusterStateRequest())
        await peer.GetRoutingTable(pb.GetRoutingTableRequest())
        await _refused(
            peer.SetSecret(pb.SetSecretRequest(namespace="example", key="k", value="v")),
            grpc.StatusCode.PERMISSION_DENIED,
        )
        await _refused(peer.ListSecrets(pb.ListSecretsRequest()), grpc.StatusCode.PERMISSION_DENIED)


# ── authority follows the release ────────────────────────────────────────


@pytest.fixture
async def operator(stub: pb_grpc.ManagerServiceStub) -> AsyncIterator[pb_grpc.ManagerServiceStub]:
    await place(
        stub,
        "node-a",
        ["example.echo@1.0.0", "example.caller@1.0.0"],
        [
            ("example.echo@1.0.0", "example", "api-key"),
            ("example.caller@1.0.0", "example", "caller-key"),
        ],
    )
    await place(stub, "node-b", ["example.caller@1.0.0"], [])
    await stub.SetSecret(pb.SetSecretRequest(namespace="example", key="api-key", value="echo's"))
    await stub.SetSecret(pb.SetSecretRequest(namespace="example", key="caller-key", value="c"))
    yield stub


async def _no_engines(operator: pb_grpc.ManagerServiceStub) -> None:
    assert not (await operator.ListEngines(pb.ListEnginesRequest())).engines
    assert not (await operator.GetRoutingTable(pb.GetRoutingTableRequest())).table.rules


async def test_node_may_not_register_a_module_placed_on_another_node(
    operator: pb_grpc.ManagerServiceStub, node_stub: NodeStubs
) -> None:
    await _refused(
        node_stub("node-b").RegisterEngine(registration(node="node-b")),
        grpc.StatusCode.PERMISSION_DENIED,
        "module example.echo@1.0.0",
        "node 'node-b'",
        "do not place it there",
    )
    # Nor may it claim to be node-a.
    await _refused(
        node_stub("node-b").RegisterEngine(registration(node="node-a")),
        grpc.StatusCode.PERMISSION_DENIED,
        "node 'node-b'",
        "engine of node 'node-a'",
    )
    await _no_engines(operator)
    # The node the release names may.
    await node_stub("node-a").RegisterEngine(registration(node="node-a"))


async def test_node_without_any_release_may_register_nothing(
    stub: pb_grpc.ManagerServiceStub, node_stub: NodeStubs
) -> None:
    await _refused(
        node_stub("node-c").RegisterEngine(registration(node="node-c")),
        grpc.StatusCode.PERMISSION_DENIED,
        "no release has been recorded",
    )


async def test_module_with_another_digest_is_refused(
    operator: pb_grpc.ManagerServiceStub, node_stub: NodeStubs
) -> None:
    impostor = module()
    impostor.digest = digest("an impostor's component")
    await _refused(
        node_stub("node-a").RegisterEngine(registration(modules=[impostor])),
        grpc.StatusCode.PERMISSION_DENIED,
        "module example.echo@1.0.0",
        impostor.digest,
        digest("example.echo@1.0.0"),
    )
    await _no_engines(operator)


async def test_addresses_must_be_on_the_node(
    operator: pb_grpc.ManagerServiceStub, node_stub: NodeStubs
) -> None:
    node = node_stub("node-a")  # certificate for 127.0.0.1 (and localhost)
    elsewhere = registration()
    elsewhere.registration.peer_address = "https://10.9.9.9:9443"
    await _refused(
        node.RegisterEngine(elsewhere),
        grpc.StatusCode.PERMISSION_DENIED,
        "peer_address 'https://10.9.9.9:9443'",
        "not on node 'node-a'",
    )
    elsewhere = registration()
    elsewhere.registration.address = "http://10.9.9.9:9100"
    await _refused(
        node.RegisterEngine(elsewhere),
        grpc.StatusCode.PERMISSION_DENIED,
        "address 'http://10.9.9.9:9100'",
    )
    await _no_engines(operator)
    on_node = registration()
    on_node.registration.peer_address = "https://localhost:9443"
    await node.RegisterEngine(on_node)


async def test_secrets_go_only_to_the_module_granted_them(
    operator: pb_grpc.ManagerServiceStub, node_stub: NodeStubs
) -> None:
    node = node_stub("node-a")
    caller = [module("caller")]
    await _refused(
        node.RegisterEngine(registration(modules=caller, secrets=[("example", "api-key")])),
        grpc.StatusCode.PERMISSION_DENIED,
        "secret example/api-key",
        "example.caller@1.0.0",
        "node 'node-a'",
    )
    await _no_engines(operator)
    granted = await node.RegisterEngine(registration(secrets=[("example", "api-key")]))
    assert {s.namespace: dict(s.secrets) for s in granted.secrets} == {
        "example": {"api-key": "echo's"}
    }
    # node-b runs caller too, but node-a's grants are not node-b's.
    await _refused(
        node_stub("node-b").RegisterEngine(
            registration("engine-b", modules=caller, node="", secrets=[("example", "caller-key")])
        ),
        grpc.StatusCode.PERMISSION_DENIED,
        "secret example/caller-key",
    )


async def test_node_may_not_touch_another_nodes_engine(
    operator: pb_grpc.ManagerServiceStub, node_stub: NodeStubs
) -> None:
    node_a, node_b = node_stub("node-a"), node_stub("node-b")
    await node_a.RegisterEngine(registration("engine-a", modules=[module("caller")]))
    for call in (
        node_b.Heartbeat(pb.HeartbeatRequest(engine_id="engine-a")),
        node_b.DeregisterEngine(pb.DeregisterEngineRequest(engine_id="engine-a")),
        node_b.RegisterEngine(registration("engine-a", modules=[module("caller")], node="")),
    ):
        await _refused(
            call, grpc.StatusCode.PERMISSION_DENIED, "engine 'engine-a'", "node 'node-b'"
        )
    (engine,) = (await operator.ListEngines(pb.ListEnginesRequest())).engines
    assert engine.registration.node == "node-a"
    await node_a.Heartbeat(pb.HeartbeatRequest(engine_id="engine-a"))
    # An operator may deregister any engine (wrctl apply converging drift).
    await operator.DeregisterEngine(pb.DeregisterEngineRequest(engine_id="engine-a"))


async def test_pending_release_authorises_until_the_next_record_of_its_target(
    operator: pb_grpc.ManagerServiceStub, node_stub: NodeStubs
) -> None:
    node_b = node_stub("node-b")
    new = module("echo", version="2.0.0")
    grants = [("example.echo@2.0.0", "example", "api-key")]
    serial = (await operator.GetClusterState(pb.GetClusterStateRequest())).serial
    await _refused(
        node_b.RegisterEngine(registration("b1", modules=[new], node="")),
        grpc.StatusCode.PERMISSION_DENIED,
        "example.echo@2.0.0",
    )

    await place(operator, "node-b", ["example.echo@2.0.0"], grants, status="pending")
    reply = await node_b.RegisterEngine(
        registration("b1", modules=[new], node="", secrets=[("example", "api-key")])
    )
    assert dict(reply.secrets[0].secrets) == {"api-key": "echo's"}
    # The applied release still authorises during the rollout.
    await node_b.RegisterEngine(registration("b0", modules=[module("caller")], node=""))
    state = await operator.GetClusterState(pb.GetClusterStateRequest())
    assert state.serial == serial  # pending is not history and moves nothing
    (b_state,) = [n for n in state.nodes if n.name == "node-b"]
    assert b_state.pending.module_digests == {"example.echo@2.0.0": digest("example.echo@2.0.0")}
    history = (await operator.ListReleases(pb.ListReleasesRequest(target="node-b"))).releases
    assert [r.status for r in history] == ["applied"]

    # The failed record of that rollout clears it: 2.0.0 is no longer authorised.
    await place(operator, "node-b", ["example.caller@1.0.0"], [], status="failed")
    await _refused(
        node_b.RegisterEngine(registration("b2", modules=[new], node="")),
        grpc.StatusCode.PERMISSION_DENIED,
        "example.echo@2.0.0",
    )
    state = await operator.GetClusterState(pb.GetClusterStateRequest())
    assert not next(n for n in state.nodes if n.name == "node-b").HasField("pending")

    # An applied record clears a pending one too; only what it places stays authorised.
    await place(operator, "node-b", ["example.echo@3.0.0"], [], status="pending")
    await place(operator, "node-b", ["example.caller@1.0.0"], [])
    await _refused(
        node_b.RegisterEngine(
            registration("b3", modules=[module("echo", version="3.0.0")], node="")
        ),
        grpc.StatusCode.PERMISSION_DENIED,
    )
    # DeleteRelease clears a pending record with the target's release.
    await place(operator, "node-b", ["example.echo@3.0.0"], [], status="pending")
    lock = await operator.AcquireApplyLock(pb.AcquireApplyLockRequest(holder="t"))
    await operator.DeleteRelease(
        pb.DeleteReleaseRequest(target="node-b", lock_id=lock.lock.lock_id)
    )
    await operator.ReleaseApplyLock(pb.ReleaseApplyLockRequest(lock_id=lock.lock.lock_id))
    await _refused(
        node_b.RegisterEngine(registration("b4", modules=[module("caller")], node="")),
        grpc.StatusCode.PERMISSION_DENIED,
        "no release has been recorded",
    )


async def test_bad_secret_grant_is_invalid_argument(operator: pb_grpc.ManagerServiceStub) -> None:
    bad = placement("node-a", grants=[("example.echo", "example", "api-key")])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await record(operator, bad)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("release.secret_grants[0].module")


async def test_secret_versions_count_sets(
    operator: pb_grpc.ManagerServiceStub, clock: object
) -> None:
    await operator.SetSecret(pb.SetSecretRequest(namespace="example", key="api-key", value="again"))
    entries = {s.key: s for s in (await operator.ListSecrets(pb.ListSecretsRequest())).secrets}
    assert (entries["api-key"].version, entries["caller-key"].version) == (2, 1)
    assert entries["api-key"].updated_at.seconds > 0

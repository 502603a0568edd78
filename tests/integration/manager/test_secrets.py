"""Secrets over real gRPC: encrypted at rest, listed by key, resolved only when requested."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.manager.server import ManagerServer
from runtime.manager.store import Tx
from tests.integration.manager.builders import registration

pytestmark = pytest.mark.asyncio(loop_scope="session")

PLAINTEXT = "hunter2-very-secret-value"


async def _set(stub: pb_grpc.ManagerServiceStub, namespace: str, key: str, value: str) -> None:
    await stub.SetSecret(pb.SetSecretRequest(namespace=namespace, key=key, value=value))


async def test_set_list_delete(stub: pb_grpc.ManagerServiceStub) -> None:
    await _set(stub, "shop", "db-password", "a")
    await _set(stub, "example", "api-key", "b")
    await _set(stub, "example", "api-key", "c")  # replace, not duplicate
    listed = (await stub.ListSecrets(pb.ListSecretsRequest())).secrets
    assert [(s.namespace, s.key) for s in listed] == [
        ("example", "api-key"),
        ("shop", "db-password"),
    ]
    only = (await stub.ListSecrets(pb.ListSecretsRequest(namespace="shop"))).secrets
    assert [(s.namespace, s.key) for s in only] == [("shop", "db-password")]

    await stub.DeleteSecret(pb.DeleteSecretRequest(namespace="shop", key="db-password"))
    listed = (await stub.ListSecrets(pb.ListSecretsRequest())).secrets
    assert [(s.namespace, s.key) for s in listed] == [("example", "api-key")]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteSecret(pb.DeleteSecretRequest(namespace="shop", key="db-password"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_values_are_never_stored_in_plaintext(
    stub: pb_grpc.ManagerServiceStub, manager: ManagerServer
) -> None:
    await _set(stub, "example", "api-key", PLAINTEXT)

    async def rows(tx: Tx) -> list[bytes]:
        found = await tx.fetch("SELECT namespace, key, nonce, ciphertext FROM secrets")
        return [bytes(r["nonce"]) + bytes(r["ciphertext"]) for r in found]

    stored = await manager.backend.run(rows, write=False)
    assert len(stored) == 1
    assert PLAINTEXT.encode() not in stored[0]
    if manager.backend.kind == "sqlite":
        db = Path(manager.config.state_url().removeprefix("sqlite://"))
        for path in db.parent.glob(db.name + "*"):  # the database, its WAL and shm files
            assert PLAINTEXT.encode() not in path.read_bytes(), path


async def test_registration_gets_exactly_the_requested_secrets(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
) -> None:
    await _set(stub, "example", "api-key", "k1")
    await _set(stub, "example", "other", "k2")
    await _set(stub, "shop", "token", "k3")
    response = await node.RegisterEngine(
        registration(secrets=[("example", "api-key"), ("shop", "token")])
    )
    got = {s.namespace: dict(s.secrets) for s in response.secrets}
    assert got == {"example": {"api-key": "k1"}, "shop": {"token": "k3"}}

    plain = await node.RegisterEngine(registration("engine-2"))
    assert not plain.secrets


async def test_missing_requested_secret_fails_and_writes_nothing(
    stub: pb_grpc.ManagerServiceStub,
    node: pb_grpc.ManagerServiceStub,
) -> None:
    await _set(stub, "example", "api-key", "k1")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await node.RegisterEngine(
            registration(secrets=[("example", "api-key"), ("example", "missing-one")])
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "example/missing-one" in (err.value.details() or "")
    assert "api-key" not in (err.value.details() or "")
    assert not (await stub.ListEngines(pb.ListEnginesRequest())).engines
    assert (await stub.GetRoutingTable(pb.GetRoutingTableRequest())).table.version == 0


@pytest.mark.parametrize(
    ("namespace", "key", "field"),
    [
        ("", "k", "namespace"),
        ("Example", "k", "namespace"),
        ("example", "", "key"),
        ("example", "has space", "key"),
    ],
)
async def test_bad_secret_names_are_invalid_argument(
    stub: pb_grpc.ManagerServiceStub, namespace: str, key: str, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _set(stub, namespace, key, "v")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(f"{field}:")
    assert not (await stub.ListSecrets(pb.ListSecretsRequest())).secrets

"""A manager stand-in for wrctl's unit tests: the real gRPC service over mutual TLS with the
cluster's CA, answering the secret RPCs and GetClusterState from memory, and refusing any
caller but an operator of the cluster (as the manager's role matrix does)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import (
    OPERATOR,
    PermissionDenied,
    TlsFiles,
    Unauthenticated,
    authorize,
    server_credentials,
)
from wrctl.pki import ClusterCA


@dataclass
class FakeManager(pb_grpc.ManagerServiceServicer):
    cluster: str
    secrets: dict[tuple[str, str], tuple[str, int, float]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def _allow(self, context: grpc.ServicerContext, what: str) -> None:
        self.calls.append(what)
        try:
            authorize(context, self.cluster, frozenset({OPERATOR}), what)
        except Unauthenticated as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except PermissionDenied as exc:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))

    def GetClusterState(self, request, context):  # type: ignore[no-untyped-def]
        self._allow(context, "GetClusterState")
        return pb.GetClusterStateResponse(serial=1, cluster=self.cluster)

    def SetSecret(self, request, context):  # type: ignore[no-untyped-def]
        self._allow(context, "SetSecret")
        key = (request.namespace, request.key)
        version = self.secrets[key][1] + 1 if key in self.secrets else 1
        self.secrets[key] = (request.value, version, time.time())
        return pb.SetSecretResponse()

    def DeleteSecret(self, request, context):  # type: ignore[no-untyped-def]
        self._allow(context, "DeleteSecret")
        self.secrets.pop((request.namespace, request.key), None)
        return pb.DeleteSecretResponse()

    def ListSecrets(self, request, context):  # type: ignore[no-untyped-def]
        self._allow(context, "ListSecrets")
        entries = []
        for (namespace, key), (_, version, when) in sorted(self.secrets.items()):
            if request.namespace in ("", namespace):
                stamp = Timestamp()
                stamp.FromSeconds(int(when))
                entries.append(
                    pb.SecretEntry(namespace=namespace, key=key, version=version, updated_at=stamp)
                )
        return pb.ListSecretsResponse(secrets=entries)


def manager_files(ca: ClusterCA, directory: Path) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in ca.manager_credentials([]).files().items():
        (directory / name).write_bytes(data)
    return TlsFiles(directory / "manager.crt", directory / "manager.key", directory / "ca.crt")


@contextmanager
def serving(ca: ClusterCA, directory: Path, cluster: str = "") -> Iterator[tuple[str, FakeManager]]:
    """A FakeManager on a free loopback port with `ca`'s manager certificate: (address, it)."""
    fake = FakeManager(cluster or ca.cluster)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_ManagerServiceServicer_to_server(fake, server)
    port = server.add_secure_port("127.0.0.1:0", server_credentials(manager_files(ca, directory)))
    server.start()
    try:
        yield f"127.0.0.1:{port}", fake
    finally:
        server.stop(None)

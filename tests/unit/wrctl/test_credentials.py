"""Operator credentials (WR_CREDENTIALS, else the cluster CA, issued on first use) and the
mutual-TLS channel to the manager: refusals become one clear error, never a traceback."""

from __future__ import annotations

import stat
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import MANAGER, MANAGER_TLS_NAME, TlsFiles, identity_uri
from tests.unit.wrctl.fakemanager import serving
from wrctl.certs import operator_for, write_credentials
from wrctl.config import load_cluster
from wrctl.credentials import (
    CREDENTIALS_ENV,
    CredentialsError,
    files_in,
    manager_channel,
    operator_name,
    resolve_credentials,
)
from wrctl.managerapi import ManagerClient
from wrctl.observe import observe
from wrctl.pki import ClusterCA, cluster_ca, pki_dir

CLUSTER = '[cluster]\nname = "c"\n[[node]]\nname = "a"\nhost = "local"\n'


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(CREDENTIALS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "cluster.toml"
    path.write_text(CLUSTER)
    return path


def _identity(files: TlsFiles) -> str:
    cert = x509.load_pem_x509_certificate(files.cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return names.get_values_for_type(x509.UniformResourceIdentifier)[0]


def test_operator_names_are_sanitised_user_names() -> None:
    assert operator_name("Alice.Smith") == "alice-smith"
    assert operator_name("DOMAIN\\bob") == "domain-bob"
    assert operator_name("@@@") == "operator"


def test_the_cluster_ca_issues_the_operator_certificate_once(
    cluster: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("wrctl.credentials._user", lambda: "Quick Start")
    first = resolve_credentials(load_cluster(cluster))
    directory = pki_dir(cluster, "c")
    assert first.files == files_in(directory)
    assert _identity(first.files) == "wruntime://c/operator/quick-start"
    assert stat.S_IMODE(first.files.key_path.stat().st_mode) == 0o600
    cert = first.files.cert_path.read_bytes()
    again = resolve_credentials(load_cluster(cluster))
    assert again.files.cert_path.read_bytes() == cert  # reused, not reissued
    assert str(directory) in again.describe()


def test_without_a_cluster_file_it_uses_the_one_in_the_current_dir(cluster: Path) -> None:
    assert resolve_credentials(None).files == files_in(pki_dir(cluster, "c"))
    cluster.unlink()
    with pytest.raises(CredentialsError, match=f"-c cluster.toml.*{CREDENTIALS_ENV}=DIR"):
        resolve_credentials(None)


def test_wr_credentials_wins_and_names_missing_files(
    cluster: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = cluster_ca(cluster, "c")
    out = tmp_path / "bob"
    write_credentials(operator_for(ca, "bob"), out)
    monkeypatch.setenv(CREDENTIALS_ENV, str(out))
    found = resolve_credentials(load_cluster(cluster))
    assert found.files == files_in(out)
    assert CREDENTIALS_ENV in found.describe()
    (out / "operator.key").unlink()
    with pytest.raises(CredentialsError, match=r"operator\.key missing"):
        resolve_credentials(load_cluster(cluster))


def test_a_ca_copy_without_its_key_cannot_make_an_operator(cluster: Path) -> None:
    ca = cluster_ca(cluster, "c")
    (ca.directory / "ca.key").unlink()
    with pytest.raises(CredentialsError, match=f"no ca.key.*{CREDENTIALS_ENV}"):
        resolve_credentials(load_cluster(cluster))


def test_a_ca_copy_without_its_key_uses_the_certificate_it_has(cluster: Path) -> None:
    issued = resolve_credentials(load_cluster(cluster))
    (issued.files.ca_cert_path.parent / "ca.key").unlink()
    assert resolve_credentials(load_cluster(cluster)).files == issued.files


# ── over the wire ────────────────────────────────────────────────────────


def test_the_operator_channel_reaches_the_manager_and_its_secrets(
    cluster: Path, tmp_path: Path
) -> None:
    credentials = resolve_credentials(load_cluster(cluster))
    with serving(cluster_ca(cluster, "c"), tmp_path / "m") as (address, fake):
        client = ManagerClient(address, credentials)
        try:
            client.set_secret("ns", "k", "v")
            assert [(e.key, e.version) for e in client.secrets()] == [("k", 1)]
            assert client.state().cluster == "c"
        finally:
            client.close()
        state = observe(address, credentials)
    assert state.reachable and state.secrets == frozenset({"ns/k"})
    assert fake.calls[:3] == ["SetSecret", "ListSecrets", "GetClusterState"]


def test_the_manager_is_verified_as_wr_manager_whatever_address_is_dialled(
    cluster: Path, tmp_path: Path
) -> None:
    """A manager certificate naming only wr-manager passes when dialled by IP."""
    ca = cluster_ca(cluster, "c")
    names: list[x509.GeneralName] = [
        x509.DNSName(MANAGER_TLS_NAME),
        x509.UniformResourceIdentifier(identity_uri("c", MANAGER, "manager")),
    ]
    cert, key = ca.issue("wr-manager", names, MANAGER)
    (ca.directory / "manager.crt").write_bytes(cert)
    (ca.directory / "manager.key").write_bytes(key)
    credentials = resolve_credentials(load_cluster(cluster))
    with (
        serving(ClusterCA(ca.directory, "c"), tmp_path / "m") as (address, _),
        manager_channel(address, credentials) as channel,
    ):
        stub = pb_grpc.ManagerServiceStub(channel)
        assert stub.GetClusterState(pb.GetClusterStateRequest(), timeout=10).cluster == "c"


def test_a_manager_of_another_ca_is_a_clear_handshake_error(cluster: Path, tmp_path: Path) -> None:
    credentials = resolve_credentials(load_cluster(cluster))
    other = ClusterCA(tmp_path / "other-ca", "c")
    with serving(other, tmp_path / "m") as (address, fake):
        client = ManagerClient(address, credentials, timeout=10)
        try:
            with pytest.raises(CredentialsError) as caught:
                client.state()
        finally:
            client.close()
    message = str(caught.value)
    assert f"TLS handshake with the manager at {address} failed" in message
    assert str(credentials.files.cert_path) in message and "another cluster CA" in message
    assert fake.calls == []  # refused before any RPC


def test_an_insecure_manager_is_a_handshake_error_not_a_hang(cluster: Path, tmp_path: Path) -> None:
    from concurrent import futures

    credentials = resolve_credentials(load_cluster(cluster))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with pytest.raises(CredentialsError, match="TLS handshake"):
            observe(f"127.0.0.1:{port}", credentials)
    finally:
        server.stop(None)


def test_a_wrong_role_is_a_clear_permission_error(cluster: Path, tmp_path: Path) -> None:
    """A node certificate of the same CA is refused per call, naming the files used."""
    ca = cluster_ca(cluster, "c")
    node = tmp_path / "node"
    write_credentials(ca.node_credentials("a", "127.0.0.1"), node)
    from wrctl.credentials import OperatorCredentials

    as_node = OperatorCredentials(files_in(node, "node"), "test")
    with serving(ca, tmp_path / "m") as (address, _):
        client = ManagerClient(address, as_node, timeout=10)
        try:
            with pytest.raises(CredentialsError) as caught:
                client.secrets()
        finally:
            client.close()
    message = str(caught.value)
    assert f"manager at {address} refused ListSecrets" in message
    assert "only the operator role" in message and str(node / "node.crt") in message


def test_a_certificate_without_identity_is_unauthenticated(cluster: Path, tmp_path: Path) -> None:
    ca = cluster_ca(cluster, "c")
    cert, key = ca.issue("nobody", [x509.DNSName("nobody")], "operator")
    out = tmp_path / "nobody"
    out.mkdir()
    (out / "operator.crt").write_bytes(cert)
    (out / "operator.key").write_bytes(key)
    (out / "ca.crt").write_bytes(ca.ca_pem)
    from wrctl.credentials import OperatorCredentials

    with serving(ca, tmp_path / "m") as (address, _):
        client = ManagerClient(address, OperatorCredentials(files_in(out), "test"), timeout=10)
        try:
            with pytest.raises(CredentialsError, match="carries no wruntime identity"):
                client.state()
        finally:
            client.close()

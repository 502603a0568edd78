"""The cluster CA: created once, node certificates reissued only when they must be, and
usable by the proxy's peer TLS contexts."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509

from runtime.proxy.config import NodeTls
from runtime.proxy.peer_tls import peer_client_context, peer_server_context
from wrctl.pki import PkiError, cluster_ca


def _write(tmp: Path, files: dict[str, bytes]) -> NodeTls:
    for name, data in files.items():
        (tmp / name).write_bytes(data)
    return NodeTls(
        cert_path=tmp / "node.crt", key_path=tmp / "node.key", ca_cert_path=tmp / "ca.crt"
    )


def test_ca_is_created_once_and_node_certs_are_reused(tmp_path: Path) -> None:
    cluster = tmp_path / "cluster.toml"
    ca = cluster_ca(cluster, "shop")
    pki = tmp_path / ".wrctl" / "shop" / "pki"
    assert (pki / "ca.key").stat().st_mode & 0o777 == 0o600
    first = ca.node_credentials("node-a", "10.0.1.50")
    again = cluster_ca(cluster, "shop").node_credentials("node-a", "10.0.1.50")
    assert again == first
    assert (pki / "node-node-a.key").stat().st_mode & 0o777 == 0o600

    cert = x509.load_pem_x509_certificate(first.cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.0.1.50" in {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    assert "node-a" in names.get_values_for_type(x509.DNSName)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(first.ca_pem))

    moved = cluster_ca(cluster, "shop").node_credentials("node-a", "10.0.1.51")
    assert moved.cert_pem != first.cert_pem and moved.key_pem != first.key_pem


def test_credentials_load_into_the_proxy_peer_contexts(tmp_path: Path) -> None:
    credentials = cluster_ca(tmp_path / "cluster.toml", "shop").node_credentials(
        "local", "127.0.0.1"
    )
    tls = _write(tmp_path, credentials.files())
    server = peer_server_context(tls)
    client = peer_client_context(tls)
    assert server.verify_mode == ssl.CERT_REQUIRED and client.check_hostname


def test_a_world_readable_ca_key_is_refused(tmp_path: Path) -> None:
    cluster_ca(tmp_path / "cluster.toml", "shop")
    key = tmp_path / ".wrctl" / "shop" / "pki" / "ca.key"
    key.chmod(0o644)
    with pytest.raises(PkiError, match="readable by others"):
        cluster_ca(tmp_path / "cluster.toml", "shop")

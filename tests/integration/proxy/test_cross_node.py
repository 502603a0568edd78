"""Cross-node forwarding: a rule owned by another node goes to its peer port over mutual TLS."""

from __future__ import annotations

import json
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.infra.pki import ClusterPki
from tests.infra.process import free_port
from tests.integration.proxy.certs import ClusterCA
from tests.integration.proxy.support import Engine, FakeManager, ProxyProcess, rule

DEST = "http://example.echo/pkg.Echo/Say"


def _node_toml(name: str, peer_port: int) -> str:
    """[node] of `name`; its [node.tls] is the pki's certificate for it (see ProxyProcess)."""
    return f"""
[node]
name = "{name}"
proxy_address = "http://127.0.0.1:9001"
peer_port = {peer_port}
peer_listen_host = "127.0.0.1"
"""


@pytest.fixture
def two_nodes(
    pki: ClusterPki, start_proxy: Callable[..., ProxyProcess]
) -> tuple[ProxyProcess, ProxyProcess, int, ClusterPki]:
    peer_b = free_port()
    node_a = start_proxy(extra_toml=_node_toml("node-a", free_port()), name="a")
    node_b = start_proxy(extra_toml=_node_toml("node-b", peer_b), name="b")
    return node_a, node_b, peer_b, pki


def test_request_for_a_module_on_another_node_goes_over_mtls(
    manager: FakeManager,
    fresh_engines: list[Engine],
    two_nodes: tuple[ProxyProcess, ProxyProcess, int, ClusterPki],
) -> None:
    node_a, node_b, peer_b, _ = two_nodes
    version = manager.set_rules(
        [rule(fresh_engines[0], peer_address=f"https://127.0.0.1:{peer_b}")]
    )
    node_a.wait_table(version)
    node_b.wait_table(version)
    status, _, body = node_a.request(
        DEST, method="POST", body=b"across", headers={"x-wr-version": "^1", "x-wr-source": "c"}
    )
    assert status == 200, body
    seen = json.loads(body)
    assert seen["engine"] == "engine-0" and seen["body_size"] == 6
    assert seen["headers"]["x-wr-via-proxy"] == "node-a, node-b"
    assert seen["headers"]["x-wr-version"] == "1.0.0"
    assert "x-wr-destination" not in seen["headers"]
    assert "x-wr-source" not in seen["headers"]


def test_peer_port_requires_a_client_certificate_from_the_cluster_ca(
    tmp_path: Path, two_nodes: tuple[ProxyProcess, ProxyProcess, int, ClusterPki]
) -> None:
    _, _, peer_b, pki = two_nodes
    ca_path = str(pki.node("node-c").ca_cert_path)
    request = b"GET / HTTP/1.1\r\nhost: x\r\nx-wr-destination: " + DEST.encode() + b"\r\n\r\n"

    def attempt(context: ssl.SSLContext) -> bytes:
        """What the peer port answers; b"" when it refuses the handshake."""
        try:
            with (
                socket.create_connection(("127.0.0.1", peer_b), timeout=10) as raw,
                context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
            ):
                tls.sendall(request)
                return tls.recv(65536)
        except (ssl.SSLError, ConnectionError):
            return b""

    no_cert = ssl.create_default_context(cafile=ca_path)
    assert attempt(no_cert) == b""

    rogue = ClusterCA(tmp_path, name="rogue CA")
    cert, key = rogue.issue("intruder")
    wrong_ca = ssl.create_default_context(cafile=ca_path)
    wrong_ca.load_cert_chain(str(cert), str(key))
    assert attempt(wrong_ca) == b""

    good_files = pki.node("node-c")
    good = ssl.create_default_context(cafile=ca_path)
    good.load_cert_chain(str(good_files.cert_path), str(good_files.key_path))
    assert attempt(good).startswith(b"HTTP/1.1 ")


def test_peer_port_delivers_only_to_local_engines(
    manager: FakeManager,
    fresh_engines: list[Engine],
    two_nodes: tuple[ProxyProcess, ProxyProcess, int, ClusterPki],
) -> None:
    _, node_b, peer_b, pki = two_nodes
    # The only instance lives on a third node: a request arriving at node-b's peer port must
    # not be forwarded again (no ping-pong between nodes).
    version = manager.set_rules(
        [rule(fresh_engines[0], peer_address=f"https://127.0.0.1:{free_port()}")]
    )
    node_b.wait_table(version)
    client = pki.node("node-a")
    context = ssl.create_default_context(cafile=str(client.ca_cert_path))
    context.load_cert_chain(str(client.cert_path), str(client.key_path))
    request = b"GET / HTTP/1.1\r\nhost: x\r\nx-wr-destination: " + DEST.encode() + b"\r\n\r\n"
    with (
        socket.create_connection(("127.0.0.1", peer_b), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(request)
        answer = tls.recv(65536)
    assert answer.startswith(b"HTTP/1.1 503") and b"on this node" in answer

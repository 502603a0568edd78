"""The hosts a caller's certificate names, and how registration addresses are matched to them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from runtime.identity import caller_hosts, is_loopback
from runtime.manager.state.authority import host_of
from wrctl.pki import ClusterCA


class _Context:
    def __init__(self, pem: bytes | None) -> None:
        self._pem = pem

    def auth_context(self) -> dict[str, Any]:
        return {} if self._pem is None else {"x509_pem_cert": [self._pem]}


def test_node_certificate_hosts_leave_out_the_role_names(tmp_path: Path) -> None:
    ca = ClusterCA(tmp_path / "ca", "test")
    node = ca.node_credentials("node-a", "10.0.0.5")
    assert caller_hosts(_Context(node.cert_pem)) == {"node-a", "localhost", "10.0.0.5", "127.0.0.1"}
    operator = ca.operator_credentials("alice")
    assert caller_hosts(_Context(operator.cert_pem)) == frozenset()
    assert caller_hosts(_Context(None)) == frozenset()


def test_hosts_of_addresses_are_normalised() -> None:
    assert host_of("https://10.0.0.5:9443") == "10.0.0.5"
    assert host_of("https://[0:0::1]:9443") == "::1"
    assert host_of("http://Node-A:9100") == "node-a"
    assert host_of("127.0.0.1:9100") == "127.0.0.1"
    assert host_of("http://") is None
    assert is_loopback("::1") and is_loopback("127.0.0.9") and is_loopback("LOCALHOST")
    assert not is_loopback("10.0.0.5") and not is_loopback("node-a")

"""`wr-proxy --config`: bad configs stop it at once with a message naming the file and key."""

from __future__ import annotations

import subprocess
from pathlib import Path

from runtime.identity import TlsFiles
from tests.infra.pki import ClusterPki
from tests.integration.proxy.support import REPO


def _run(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / ".venv/bin/wr-proxy"), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_non_loopback_listen_address_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text('listen_address = "0.0.0.0:9001"\n')
    result = _run(config)
    assert result.returncode == 2
    assert f"{config}: listen_address" in result.stderr
    assert "loopback" in result.stderr


def test_missing_tls_files_are_named(tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text(
        'admin_address = "127.0.0.1:0"\nlisten_address = "127.0.0.1:0"\n'
        'control_address = "127.0.0.1:0"\nmanager_address = "127.0.0.1:1"\n'
        '[node.tls]\ncert_path = "/nope/node.crt"\nkey_path = "/nope/node.key"\n'
        'ca_cert_path = "/nope/ca.crt"\n'
    )
    result = _run(config)
    assert result.returncode == 2, result.stderr
    assert "[node.tls]" in result.stderr and "/nope/node.crt" in result.stderr


def _with_tls(config: Path, files: TlsFiles, node: str = "") -> None:
    name = f'name = "{node}"\n' if node else ""
    config.write_text(
        'admin_address = "127.0.0.1:0"\nlisten_address = "127.0.0.1:0"\n'
        'control_address = "127.0.0.1:0"\nmanager_address = "127.0.0.1:1"\n'
        f"[node]\n{name}peer_port = 1\n"
        f'[node.tls]\ncert_path = "{files.cert_path}"\nkey_path = "{files.key_path}"\n'
        f'ca_cert_path = "{files.ca_cert_path}"\n'
    )


def test_node_tls_is_required(tmp_path: Path) -> None:
    config = tmp_path / "proxy.toml"
    config.write_text('[node]\nname = "node-a"\n')
    result = _run(config)
    assert result.returncode == 2
    assert f"{config}: node.tls: Field required" in result.stderr


def test_a_certificate_that_is_not_a_node_certificate_is_refused(
    tmp_path: Path, pki: ClusterPki
) -> None:
    config = tmp_path / "proxy.toml"
    operator = pki.operator()
    _with_tls(config, operator)
    result = _run(config)
    assert result.returncode == 2
    assert f"{operator.cert_path} carries no node identity" in result.stderr


def test_node_name_must_match_the_certificate(tmp_path: Path, pki: ClusterPki) -> None:
    config = tmp_path / "proxy.toml"
    _with_tls(config, pki.node("node-b"), node="node-a")
    result = _run(config)
    assert result.returncode == 2
    assert "[node] name is 'node-a' but the node certificate" in result.stderr
    assert "node 'node-b' of cluster 'test'" in result.stderr

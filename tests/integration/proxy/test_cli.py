"""`wr-proxy --config`: bad configs stop it at once with a message naming the file and key."""

from __future__ import annotations

import subprocess
from pathlib import Path

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

"""engine.toml validation: defaults, loopback rule, names, secrets, unknown keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.engine.config import load_engine_config
from runtime.tomlconfig import ConfigError

MODULE = """
[[module]]
name = "echo"
namespace = "example"
version = "1.0.0"
wasm_path = "build/echo.wasm"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "engine.toml"
    path.write_text(text)
    return path


def test_defaults_and_relative_paths(tmp_path: Path) -> None:
    config = load_engine_config(
        write(tmp_path, MODULE + 'env = { A = "1", K = { secret = "k" } }\n')
    )
    assert config.listen_address == "127.0.0.1:9100"
    assert config.node.proxy_address == "http://127.0.0.1:9001"
    assert config.node.control_address is None
    assert config.workers >= 1
    m = config.module[0]
    assert m.wasm_path == tmp_path.resolve() / "build/echo.wasm"
    assert (m.request_timeout_secs, m.memory_limit_mb, m.max_body_mb) == (30.0, 256, 64)
    assert m.inline_env() == {"A": "1"}
    assert m.secret_keys() == {"K": "k"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('listen_address = "0.0.0.0:9100"\n', "is not loopback"),
        ('listen_address = "9100"\n', "expected host:port"),
        ("colour = 1\n", "colour: Extra inputs are not permitted"),
        (MODULE.replace('"echo"', '"Echo_1"'), "module[0].name"),
        (MODULE.replace('"1.0.0"', '"1.0"'), "is not a semantic version"),
        (MODULE + MODULE, "module example.echo is declared twice"),
        (MODULE + "request_timeout_secs = 0\n", "request_timeout_secs"),
        (MODULE + "max_body_mb = 0\n", "max_body_mb"),
        (MODULE + "max_body_mb = 1025\n", "max_body_mb"),
        (MODULE + 'capabilities = ["gpu"]\n', "capabilities"),
        (MODULE + "env = { K = { secret = false } }\n", "env.K"),
        ('[node]\nproxy_address = "127.0.0.1:9001"\n', "expected an http:// URL"),
        (
            '[node]\ncontrol_address = "http://127.0.0.1:9002"\n',
            "[node.tls] (cert_path, key_path, ca_cert_path of the node certificate) is required",
        ),
        ('[node.tls]\ncert_path = "a"\nkey_path = "b"\n', "node.tls.ca_cert_path"),
    ],
)
def test_bad_config_names_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_engine_config(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_non_loopback_allowed_explicitly(tmp_path: Path) -> None:
    text = 'listen_address = "0.0.0.0:9100"\nallow_non_loopback = true\n'
    assert load_engine_config(write(tmp_path, text)).listen_address == "0.0.0.0:9100"


def test_node_tls_paths_are_relative_to_the_config(tmp_path: Path) -> None:
    text = (
        '[node]\ncontrol_address = "http://127.0.0.1:9002"\n[node.tls]\n'
        'cert_path = "tls/node.crt"\nkey_path = "tls/node.key"\nca_cert_path = "/etc/ca.crt"\n'
    )
    tls = load_engine_config(write(tmp_path, text)).node.tls
    assert tls is not None
    files = tls.files()
    assert files.cert_path == tmp_path.resolve() / "tls/node.crt"
    assert files.key_path == tmp_path.resolve() / "tls/node.key"
    assert files.ca_cert_path == Path("/etc/ca.crt")

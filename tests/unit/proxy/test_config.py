"""proxy.toml loading: defaults, loopback enforcement, clear errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.proxy.config import load_proxy_config
from runtime.tomlconfig import ConfigError

TLS = """
[node.tls]
cert_path = "/etc/wruntime/tls/node.crt"
key_path = "/etc/wruntime/tls/node.key"
ca_cert_path = "/etc/wruntime/tls/ca.crt"
"""


def _load(tmp_path: Path, text: str, tls: str = TLS):  # type: ignore[no-untyped-def]
    path = tmp_path / "proxy.toml"
    path.write_text(text + "\n" + tls)
    return load_proxy_config(path)


def test_defaults(tmp_path: Path) -> None:
    config = _load(tmp_path, "")
    assert config.listen_address == "127.0.0.1:9001"
    assert config.control_address == "127.0.0.1:9002"
    assert config.request_timeout_secs == 30
    assert config.header_timeout_secs == 10
    assert config.client_idle_timeout_secs == 75
    assert config.circuit_breaker.failure_threshold == 5
    assert config.circuit_breaker.open_duration_secs == 30
    assert config.cache.routing_table_poll_ms <= 1000
    assert config.node.peer_address == "https://127.0.0.1:9443"
    assert config.external is None
    assert config.node.tls.files().cert_path == Path("/etc/wruntime/tls/node.crt")


@pytest.mark.parametrize(
    ("tls", "expected"),
    [
        ("", "node: Field required"),
        ("[node]\nname = 'node-a'\n", "node.tls: Field required"),
        ("[node.tls]\ncert_path = 'n.crt'\nkey_path = 'n.key'\n", "node.tls.ca_cert_path"),
    ],
)
def test_node_tls_is_required(tmp_path: Path, tls: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        _load(tmp_path, "", tls)


def test_peer_address_from_proxy_address_and_peer_port(tmp_path: Path) -> None:
    config = _load(tmp_path, '[node]\nproxy_address = "http://[fd00::5]:9001"\npeer_port = 9444\n')
    assert config.node.peer_address == "https://[fd00::5]:9444"
    assert config.node.node_id == "[fd00::5]:9444"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'listen_address = "0.0.0.0:9001"',
            "listen_address: Value error, '0.0.0.0:9001' must bind",
        ),
        ('control_address = "10.0.0.1:9002"', "control_address: Value error"),
        ('listen_address = "127.0.0.1"', "is not host:port"),
        ("request_timeout_secs = 0", "request_timeout_secs"),
        ("surprise = 1", "surprise: Extra inputs are not permitted"),
        ('[node]\nproxy_address = "node-a:9001"', "node.proxy_address"),
        ('[egress]\nallowed_domains = ["*.*.x.com"]', "egress.allowed_domains"),
        ("[circuit_breaker]\nfailure_threshold = 0", "circuit_breaker.failure_threshold"),
        (
            '[external]\n[[external.route]]\npath = "/a/{x}"\nmodule = "m"\nnamespace = "n"\n'
            '[[external.route]]\npath = "/a/{y}"\nmodule = "m"\nnamespace = "n"',
            "conflicts with",
        ),
        (
            '[external]\n[[external.route]]\npath = "/a"\nmodule = "Bad"\nnamespace = "n"',
            "external.route[0].module",
        ),
        (
            '[external]\n[[external.route]]\npath = "/__health"\nmodule = "m"\nnamespace = "n"',
            "external.route[0].path: Value error, '/__health': paths under /__ are reserved",
        ),
        (
            '[external]\n[[external.route]]\npath = "/a"\nmodule = "m"\nnamespace = "n"\n'
            '[[external.route]]\npath = "/a/"\nmodule = "m"\nnamespace = "n"',
            "route '/a/' conflicts with '/a'",
        ),
        (
            '[external]\n[[external.route]]\npath = "/a"\nmethods = ["GE T"]\n'
            'module = "m"\nnamespace = "n"',
            "'GE T' is not an HTTP method token",
        ),
        ("[tracing]\nsample_ratio = 2", "tracing.sample_ratio"),
    ],
)
def test_errors_name_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(tmp_path, text)
    message = str(raised.value)
    assert message.startswith(str(tmp_path / "proxy.toml"))
    assert expected in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_proxy_config(tmp_path / "nope.toml")


def test_addresses() -> None:
    from runtime.proxy.config import is_loopback, split_host_port

    assert split_host_port("[::1]:9001") == ("::1", 9001)
    assert split_host_port("localhost:0") == ("localhost", 0)
    assert is_loopback("::1") and is_loopback("127.0.0.2") and is_loopback("LOCALHOST")
    assert not is_loopback("10.0.0.1") and not is_loopback("node-a")
    with pytest.raises(ValueError, match="host:port"):
        split_host_port("9001")

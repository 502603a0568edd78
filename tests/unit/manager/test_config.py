"""manager.toml parsing: defaults, state URLs, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.manager.config import ManagerConfig, load_manager_config, split_host_port
from runtime.tomlconfig import ConfigError

TLS = {
    "cert_path": "/etc/wr/manager.crt",
    "key_path": "/etc/wr/manager.key",
    "ca_cert_path": "ca.crt",
}


def _write(tmp_path: Path, text: str, tls: bool = True) -> Path:
    path = tmp_path / "manager.toml"
    table = "".join(f'{key} = "{value}"\n' for key, value in TLS.items())
    # Top-level keys first: everything after [tls] belongs to the table.
    path.write_text(text + ("[tls]\n" + table if tls else ""))
    return path


def test_defaults() -> None:
    config = ManagerConfig.model_validate({"tls": TLS})
    assert config.listen_address == "127.0.0.1:9000"
    assert config.admin_address == "127.0.0.1:9090"
    assert config.engine_heartbeat_timeout_secs == 30
    assert config.module_timeout == 30
    assert config.secrets_key_env == "WR_SECRETS_KEY"
    assert config.state_url() == "sqlite:///var/lib/wruntime/manager.db"


def test_module_timeout_defaults_to_engine_timeout(tmp_path: Path) -> None:
    config = load_manager_config(_write(tmp_path, "engine_heartbeat_timeout_secs = 2\n"))
    assert config.module_timeout == 2
    config = load_manager_config(
        _write(tmp_path, "engine_heartbeat_timeout_secs = 2\nmodule_heartbeat_timeout_secs = 1.5\n")
    )
    assert config.module_timeout == 1.5


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("sqlite", "sqlite://{dir}/data/manager.db"),
        ("sqlite:///srv/state.db", "sqlite:///srv/state.db"),
        ("sqlite:sub/state.db", "sqlite://{dir}/data/sub/state.db"),
        ("postgresql://wr@db:5432/wruntime", "postgresql://wr@db:5432/wruntime"),
    ],
)
def test_state_urls_resolve_against_data_dir(tmp_path: Path, state: str, expected: str) -> None:
    config = load_manager_config(_write(tmp_path, f'data_dir = "data"\nstate = "{state}"\n'))
    assert config.data_dir == str(tmp_path / "data")
    assert config.state_url() == expected.format(dir=tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("listen_adress = 'x'\n", "listen_adress: Extra inputs are not permitted"),
        (
            "listen_address = '127.0.0.1'\n",
            "listen_address: Value error, '127.0.0.1' is not host:port",
        ),
        ("state = 'mysql://x'\n", 'state: Value error, expected "sqlite"'),
        (
            "engine_heartbeat_timeout_secs = 0\n",
            "engine_heartbeat_timeout_secs: Input should be greater than 0",
        ),
        (
            "secrets_key_env = 'not a var'\n",
            "secrets_key_env: Value error, expected an environment",
        ),
        ("log_level = 'loud'\n", "log_level: Input should be"),
        (
            "engine_heartbeat_timeout_secs = 60\nengine_retention_secs = 30\n",
            "(top level): Value error, engine_retention_secs must be longer",
        ),
    ],
)
def test_bad_keys_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_manager_config(path)
    assert f"{path}: {message}" in str(err.value)


def test_tls_is_required_and_relative_paths_resolve(tmp_path: Path) -> None:
    path = _write(tmp_path, "", tls=False)
    with pytest.raises(ConfigError) as err:
        load_manager_config(path)
    assert f"{path}: tls: Field required" in str(err.value)
    config = load_manager_config(_write(tmp_path, ""))
    assert config.tls.cert_path == Path("/etc/wr/manager.crt")
    assert config.tls.ca_cert_path == tmp_path / "ca.crt"


def test_split_host_port() -> None:
    assert split_host_port("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert split_host_port("[::1]:0") == ("::1", 0)
    with pytest.raises(ValueError, match="not host:port"):
        split_host_port("localhost:99999")

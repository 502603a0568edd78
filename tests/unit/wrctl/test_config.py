"""cluster.toml loading: a valid file, and bad files whose errors name place, key and need."""

from __future__ import annotations

from pathlib import Path

import pytest

from wrctl.config import SecretRef, load_cluster
from wrctl.errors import ConfigError

VALID = """\
[cluster]
name = "shop"

[defaults]
format = "supervisor"

[[node]]
name = "node-a"
host = "local"

[[node]]
name = "node-b"
host = "10.0.1.51"
format = "systemd"

[[module]]
namespace = "example"
name = "echo"
version = "1.0.0"
component = "echo.wasm"
nodes = ["node-a"]
env = { GREETING = "hi", API_KEY = { secret = "api-key" } }
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "echo.wasm").write_bytes(b"\0asm")
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return path


def test_valid_file_loads_with_defaults(tmp_path: Path) -> None:
    config = load_cluster(_write(tmp_path, VALID))
    assert config.cluster.name == "shop"
    assert [n.name for n in config.node] == ["node-a", "node-b"]
    assert config.node[1].format == "systemd" and config.node[0].format is None
    assert config.defaults.format == "supervisor" and config.defaults.workdir == "/opt/wruntime"
    mod = config.module[0]
    assert mod.env == {"GREETING": "hi", "API_KEY": SecretRef(secret="api-key")}
    assert mod.request_timeout_secs == 30 and mod.replicas == 1
    assert config.manager.host == "local" and config.manager.port == 9000


BAD = [
    # (description, replace old -> new, expected fragment, expected line)
    (
        "typo in a top-level key",
        ("[defaults]", "[defualts]"),
        "defualts: unknown key; did you mean 'defaults'?",
        4,
    ),
    (
        "typo in a node key",
        ('host = "local"', 'hots = "local"'),
        "node[0].hots: unknown key; did you mean 'host'?",
        9,
    ),
    ("missing node host", ('host = "local"\n', ""), "node[0].host: required key is missing", 7),
    (
        "bad node name",
        ('name = "node-a"', 'name = "Node_A"'),
        "node[0].name: 'Node_A' is not a valid name",
        8,
    ),
    (
        "bad format",
        ('format = "systemd"', 'format = "kubernetes"'),
        "node[1].format: Input should be 'systemd', 'docker' or 'supervisor', got 'kubernetes'",
        14,
    ),
    (
        "bad version",
        ('version = "1.0.0"', 'version = "1.0"'),
        "module[0].version: '1.0' is not a semantic version",
        19,
    ),
    (
        "long module name",
        ('name = "echo"', 'name = "' + "e" * 25 + '"'),
        "module[0].name: '" + "e" * 25 + "' is not a valid name (1-24 characters",
        18,
    ),
    (
        "unknown node reference",
        ('nodes = ["node-a"]', 'nodes = ["node-c"]'),
        "module[0].nodes[0]: unknown node 'node-c'",
        21,
    ),
    (
        "close node reference",
        ('nodes = ["node-a"]', 'nodes = ["nod-a"]'),
        "unknown node 'nod-a'; did you mean 'node-a'?",
        21,
    ),
    (
        "component missing",
        ('component = "echo.wasm"', 'component = "nope.wasm"'),
        "module[0].component: file not found:",
        20,
    ),
    (
        "secret ref typo",
        ('{ secret = "api-key" }', '{ secrte = "api-key" }'),
        "module[0].env.API_KEY.secrte: unknown key; did you mean 'secret'?",
        22,
    ),
    (
        "env value of wrong type",
        ('GREETING = "hi"', "GREETING = 3"),
        'module[0].env.GREETING: expected a string or { secret = "name" }',
        22,
    ),
    (
        "bad env name",
        ('GREETING = "hi"', '"1BAD" = "hi"'),
        "env name '1BAD' is not a valid variable name",
        22,
    ),
    (
        "port out of range",
        ('host = "10.0.1.51"', 'host = "10.0.1.51"\ndata_port = 70000'),
        "node[1].data_port: Input should be less than or equal to 65535",
        14,
    ),
    (
        "replicas zero",
        ('nodes = ["node-a"]', 'nodes = ["node-a"]\nreplicas = 0'),
        "module[0].replicas: Input should be greater than or equal to 1",
        22,
    ),
    (
        "wrong type for a table",
        ('[cluster]\nname = "shop"', 'cluster = "shop"'),
        "cluster: Input should be a valid dictionary",
        1,
    ),
    (
        "duplicate node",
        ('name = "node-b"', 'name = "node-a"'),
        "node[1].name: duplicate node name 'node-a'",
        12,
    ),
    (
        "unknown capability",
        ('nodes = ["node-a"]', 'nodes = ["node-a"]\ncapabilities = ["gpu"]'),
        "module[0].capabilities[0]: Input should be 'db', 'blobstore', 'tracing' or 'llm'",
        22,
    ),
    (
        "relative workdir",
        ('format = "supervisor"', 'format = "supervisor"\nworkdir = "opt"'),
        "defaults.workdir: 'opt' must be an absolute path for remote host '10.0.1.51'",
        6,
    ),
    (
        "postgres state typo",
        ("[defaults]", '[manager]\nstate = "mysql://x"\n\n[defaults]'),
        'manager.state: expected "sqlite" or a postgres://... URL',
        5,
    ),
    ("no nodes", (VALID[VALID.index("[[node]]") :], ""), "at least one [[node]] is required", 1),
    (
        "trusted key not base64 of 32 bytes",
        ("[defaults]", '[bundle]\ntrusted_keys = [\n  "c2hvcnQ=",\n]\n\n[defaults]'),
        "bundle.trusted_keys[0]: trusted key 'c2hvcnQ=' is not base64 of a 32-byte ed25519 "
        "public key (make one with `wrctl bundle keygen FILE`)",
        5,
    ),
    (
        "signing key file missing",
        ("[defaults]", '[bundle]\nsigning_key = "keys/none.pem"\n\n[defaults]'),
        "bundle.signing_key: file not found:",
        5,
    ),
    (
        "bundle platform not a wheel tag",
        ("[defaults]", '[bundle]\nplatform = "linux-x86_64"\n\n[defaults]'),
        "bundle.platform: 'linux-x86_64' is not a Linux wheel platform tag",
        5,
    ),
    (
        "bundle python not a version",
        ("[defaults]", '[bundle]\npython = "py311"\n\n[defaults]'),
        "bundle.python: 'py311' is not a Python version (expected like 3.11)",
        5,
    ),
    (
        "unknown bundle key",
        ("[defaults]", "[bundle]\ntrusted_key = []\n\n[defaults]"),
        "bundle.trusted_key: unknown key; did you mean 'trusted_keys'?",
        5,
    ),
]


@pytest.mark.parametrize(("what", "change", "fragment", "line"), BAD, ids=[b[0] for b in BAD])
def test_bad_files_name_place_key_and_expectation(
    tmp_path: Path, what: str, change: tuple[str, str], fragment: str, line: int
) -> None:
    old, new = change
    assert old in VALID, what
    path = _write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_cluster(path)
    message = str(info.value)
    assert fragment in message
    assert f"{path}:{line}:" in message, message


def test_toml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace('name = "shop"', 'name = "shop'))
    with pytest.raises(ConfigError, match=rf"^{path}:2:\d+: not valid TOML"):
        load_cluster(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_cluster(tmp_path / "cluster.toml")


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = VALID.replace('host = "local"', 'hots = "local"').replace('"1.0.0"', '"x"')
    with pytest.raises(ConfigError) as info:
        load_cluster(_write(tmp_path, text))
    assert len(info.value.problems) == 3  # hots unknown, host missing, bad version


def test_bundle_section_accepts_keys_and_a_signing_key(tmp_path: Path) -> None:
    key = "A" * 43 + "="  # base64 of 32 zero-ish bytes
    (tmp_path / "sign.pem").write_text("-")
    text = VALID.replace(
        "[defaults]",
        f'[bundle]\ntrusted_keys = ["{key}"]\nsigning_key = "sign.pem"\n'
        'platform = "manylinux2014_aarch64"\n\n[defaults]',
    )
    config = load_cluster(_write(tmp_path, text))
    assert config.bundle.trusted_keys == [key]
    assert config.bundle.signing_key == "sign.pem" and config.bundle.python == "3.11"
    assert config.bundle.platform == "manylinux2014_aarch64"

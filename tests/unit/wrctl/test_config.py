"""cluster.toml loading: a valid file, and bad files whose errors name place, key and need."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.proxy.config import load_proxy_config
from runtime.tomlconfig import ConfigError as RuntimeConfigError
from runtime.wire import COMPONENT_HEADER
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
    (tmp_path / "echo.wasm").write_bytes(COMPONENT_HEADER)
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


# Put in place of [defaults] (line 4): [[proxy.route]] on line 7, its keys on lines 8-10.
ROUTES = """[proxy]
external_port = 8080

[[proxy.route]]
path = "{path}"
namespace = "example"
module = "{module}"{more}

[defaults]"""

BAD = [
    # (description, replace old -> new, expected fragment, expected line)
    (
        "typo in a top-level key",
        ("[defaults]", "[defualts]"),
        "defualts: unknown key; did you mean 'defaults'?",
        4,
    ),
    (
        "a top-level key spelled like a union tag",
        ("[defaults]", "str = 1\n\n[defaults]"),
        "str: unknown key",
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
    (
        "route to a module not in the file",
        ("[defaults]", ROUTES.format(path="/hi", module="nope", more="")),
        "proxy.route[0].module: no module example.nope",
        10,
    ),
    (
        "route on a reserved path",
        ("[defaults]", ROUTES.format(path="/__health", module="echo", more="")),
        "proxy.route[0].path: '/__health': paths under /__ are reserved for the runtime",
        8,
    ),
    (
        "route parameter not a whole segment",
        ("[defaults]", ROUTES.format(path="/hi/{id}.json", module="echo", more="")),
        "proxy.route[0].path: '/hi/{id}.json': a parameter must be a whole segment like {id}",
        8,
    ),
    (
        "route method not a token",
        ("[defaults]", ROUTES.format(path="/hi", module="echo", more='\nmethods = ["GE T"]')),
        "proxy.route[0].methods[0]: 'GE T' is not an HTTP method token",
        11,
    ),
    (
        "routes that match the same requests",
        (
            "[defaults]",
            ROUTES.format(
                path="/hi/{id}",
                module="echo",
                more='\n\n[[proxy.route]]\npath = "/hi/{key}/"\nnamespace = "example"\n'
                'module = "echo"',
            ),
        ),
        "proxy.route[1].path: '/hi/{key}/' matches the same requests as proxy.route[0] "
        "('/hi/{id}'); the proxy refuses such a pair",
        13,
    ),
    (
        "routes without the ingress listener",
        (
            "[defaults]",
            ROUTES.format(path="/hi", module="echo", more="").replace("external_port", "#"),
        ),
        "proxy.route[0]: public routes need proxy.external_port",
        7,
    ),
    (
        "module deadline above the proxy's",
        ('nodes = ["node-a"]', 'nodes = ["node-a"]\nrequest_timeout_secs = 60'),
        "module[0].request_timeout_secs: 60 s is above proxy.request_timeout_secs (30 s): "
        "the proxy answers 504 first",
        22,
    ),
    (
        "default module deadline above a lowered proxy's",
        ("[defaults]", "[proxy]\nrequest_timeout_secs = 10\n\n[defaults]"),
        "module[0].request_timeout_secs: 30 s (the default) is above "
        "proxy.request_timeout_secs (10 s)",
        19,  # the key is not written: the line of its [[module]] table
    ),
    (
        "heartbeat timeout within the engines' heartbeat interval",
        ("[defaults]", "[manager]\nheartbeat_timeout_secs = 3\n\n[defaults]"),
        "manager.heartbeat_timeout_secs: 3 s is not above the engines' heartbeat interval (3 s)",
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


@pytest.mark.parametrize(
    "path", ["/hi", "/hi/{id}", "/", "hi", "/__health", "/__x/y", "/hi/{id}.json", "/{*rest}"]
)
def test_wrctl_accepts_a_public_route_exactly_when_the_proxy_does(
    tmp_path: Path, path: str
) -> None:
    proxy_toml = tmp_path / "proxy.toml"
    node = '[node]\nname = "a"\n[node.tls]\ncert_path = "c"\nkey_path = "k"\nca_cert_path = "ca"\n'
    proxy_toml.write_text(
        node
        + f'[external]\n[[external.route]]\npath = "{path}"\nmodule = "echo"\nnamespace = "example"'
    )
    try:
        load_proxy_config(proxy_toml)
        proxy_accepts = True
    except RuntimeConfigError:
        proxy_accepts = False
    cluster = _write(
        tmp_path, VALID.replace("[defaults]", ROUTES.format(path=path, module="echo", more=""), 1)
    )
    try:
        load_cluster(cluster)
        wrctl_accepts = True
    except ConfigError:
        wrctl_accepts = False
    assert wrctl_accepts == proxy_accepts

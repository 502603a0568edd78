"""`wrctl validate`'s table of bad cluster.toml files (issue 17): each would have failed on a
host, or crashed validate; each is now refused with its file:line:col and what was expected.
The files the modules name are real: a component, a core module, a text file, protos."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.wire import COMPONENT_HEADER, CORE_MODULE_HEADER
from wrctl.config import load_cluster
from wrctl.errors import ConfigError

VALID = """\
[cluster]
name = "shop"

[manager]
host = "local"
port = 9000

[defaults]
format = "supervisor"
workdir = "/opt/wr"

[proxy]
external_port = 8080
egress_allowlist = ["api.example.com", "*.example.org"]

[[proxy.route]]
path = "/hi"
namespace = "example"
module = "echo"
methods = ["GET"]

[[node]]
name = "node-a"
host = "local"

[[node]]
name = "node-b"
host = "10.0.1.51"

[[module]]
namespace = "example"
name = "echo"
version = "1.0.0"
component = "echo.wasm"
schema = "echo.proto"
nodes = ["node-a"]
env = { GREETING = "hi" }
"""

NODE_A = 'name = "node-a"\nhost = "local"'
NODE_B = 'name = "node-b"\nhost = "10.0.1.51"'
MODULE_NODES = 'nodes = ["node-a"]'
LOCAL_NODE_C = (
    '\n\n[[node]]\nname = "node-c"\nhost = "local"\ndata_port = 9201\ncontrol_port = 9202\n'
    "admin_port = 9203\npeer_port = 9204\n"
)


def _files(root: Path) -> None:
    (root / "echo.wasm").write_bytes(COMPONENT_HEADER + b"echo")
    (root / "core.wasm").write_bytes(CORE_MODULE_HEADER + b"core")
    (root / "notes.txt").write_text("not wasm\n")
    (root / "echo.proto").write_text(
        'syntax = "proto3";\npackage echo;\nmessage EchoRequest { string message = 1; }\n'
    )
    (root / "bad.proto").write_text('syntax = "proto3";\npackage echo;\nmessage Echo { int }\n')


# (id, [(old, new), ...] applied to VALID in order, expected fragment, expected line)
Case = tuple[str, list[tuple[str, str]], str, int]
CASES: list[Case] = [
    # ---- ports: two listeners on one host ---------------------------------------------------
    (
        "manager port is a node's data port",
        [("port = 9000", "port = 9001")],
        "node[0].data_port: port 9001 is already manager.port on host 'local'",
        22,
    ),
    (
        "data and control port of one node",
        [(NODE_A, NODE_A + "\ncontrol_port = 9001")],
        "node[0].control_port: port 9001 is already node[0].data_port on host 'local'",
        25,
    ),
    (
        "engine range runs into the manager's admin port",
        [(NODE_A, NODE_A + "\nengines = 3\nengine_port = 9088")],
        "node[0].engines: port 9090 is already manager.admin_port on host 'local'",
        25,
    ),
    (
        "engine ranges of two local nodes overlap",
        [(NODE_B, NODE_B + LOCAL_NODE_C + "engine_port = 9099\nengines = 2")],
        "node[2].engines: port 9100 is already node[0]'s engine 0 (engine_port + 0) on host "
        "'local'",
        38,
    ),
    (
        "external port is a node's data port",
        [("external_port = 8080", "external_port = 9001")],
        "proxy.external_port: port 9001 is already node[0].data_port on host 'local'",
        13,
    ),
    (
        "two local nodes on the same (default) ports",
        [(NODE_B, 'name = "node-b"\nhost = "local"')],
        "node[1].data_port: port 9001 is already node[0].data_port on host 'local'",
        26,
    ),
    (
        "two nodes on one remote host with the same ports",
        [(NODE_B, NODE_B + '\n\n[[node]]\nname = "node-c"\nhost = "10.0.1.51"')],
        "node[2].data_port: port 9001 is already node[1].data_port on host '10.0.1.51'",
        30,
    ),
    (
        "the manager on a node's host and port",
        [('host = "local"\nport = 9000', 'host = "10.0.1.51"\nport = 9443')],
        "node[1].peer_port: port 9443 is already manager.port on host '10.0.1.51'",
        26,
    ),
    (
        "public ingress on the peer port",
        [(NODE_A, NODE_A + "\npeer_port = 8080")],
        "proxy.external_port: port 8080 is already node[0].peer_port on host 'local'",
        13,
    ),
    (
        "engine range past 65535",
        [(NODE_A, NODE_A + "\nengine_port = 65535\nengines = 2")],
        "node[0].engines: 2 engines from engine_port 65535 need ports up to 65536, past 65535",
        26,
    ),
    # ---- files the modules name -------------------------------------------------------------
    (
        "component is a text file",
        [('component = "echo.wasm"', 'component = "notes.txt"')],
        "module[0].component: {root}/notes.txt is not a WebAssembly component "
        "(expected a file starting with 00 61 73 6d 0d 00 01 00)",
        34,
    ),
    (
        "component is a core module",
        [('component = "echo.wasm"', 'component = "core.wasm"')],
        "module[0].component: {root}/core.wasm is a core WebAssembly module, not a component",
        34,
    ),
    (
        "component path out of the tree",
        [('component = "echo.wasm"', 'component = "../../../../../../../../etc/passwd"')],
        "etc/passwd is not a WebAssembly component",
        34,
    ),
    (
        "component is a directory",
        [('component = "echo.wasm"', 'component = "."')],
        "module[0].component: {root} is not a regular file",
        34,
    ),
    (
        "schema does not compile",
        [('schema = "echo.proto"', 'schema = "bad.proto"')],
        "module[0].schema: {root}/bad.proto does not compile: {root}/bad.proto:3:20: Expected "
        "field name.",
        35,
    ),
    (
        "schema is a directory",
        [('schema = "echo.proto"', 'schema = "/etc"')],
        "module[0].schema: /etc is not a regular file",
        35,
    ),
    # ---- names match whole -----------------------------------------------------------------
    (
        "module name ends in a newline",
        [('name = "echo"', 'name = "echo\\n"')],
        "module[0].name: 'echo\\n' is not a valid name",
        32,
    ),
    (
        "cluster name ends in a newline",
        [('name = "shop"', 'name = "shop\\n"')],
        "cluster.name: 'shop\\n' is not a valid name",
        2,
    ),
    (
        "node name ends in a newline",
        [('name = "node-a"', 'name = "node-a\\n"')],
        "node[0].name: 'node-a\\n' is not a valid name",
        23,
    ),
    (
        "namespace ends in a newline",
        [('namespace = "example"\nname', 'namespace = "example\\n"\nname')],
        "module[0].namespace: 'example\\n' is not a valid name",
        31,
    ),
    (
        "secret name ends in a newline",
        [('{ GREETING = "hi" }', '{ GREETING = { secret = "key\\n" } }')],
        "module[0].env.GREETING.secret: 'key\\n' is not a valid name",
        37,
    ),
    (
        "version ends in a newline",
        [('version = "1.0.0"', 'version = "1.0.0\\n"')],
        "module[0].version: '1.0.0\\n' is not a semantic version",
        33,
    ),
    (
        "env value with a NUL",
        [('{ GREETING = "hi" }', '{ GREETING = "a\\u0000b" }')],
        "module[0].env.GREETING: no environment can hold a NUL character",
        37,
    ),
    (
        "env name ends in a newline",
        [('{ GREETING = "hi" }', '{ "GREETING\\n" = "hi" }')],
        "env name 'GREETING\\n' is not a valid variable name",
        37,
    ),
    # ---- public routes and egress ----------------------------------------------------------
    (
        "route method ends in a newline",
        [('methods = ["GET"]', 'methods = ["GET\\n"]')],
        "proxy.route[0].methods[0]: 'GET\\n' is not an HTTP method token",
        20,
    ),
    (
        "route method list in one string",
        [('methods = ["GET"]', 'methods = ["GET,POST"]')],
        "proxy.route[0].methods[0]: 'GET,POST' is not an HTTP method token",
        20,
    ),
    (
        "route path with a space",
        [('path = "/hi"', 'path = "/a b"')],
        "proxy.route[0].path: '/a b': only URL path characters may appear",
        17,
    ),
    (
        "route path with a newline",
        [('path = "/hi"', 'path = "/hi\\nHost: x"')],
        "only URL path characters may appear",
        17,
    ),
    (
        "routes differing by a trailing slash",
        [
            (
                'methods = ["GET"]',
                'methods = ["GET"]\n\n[[proxy.route]]\npath = "/hi/"\nnamespace = "example"\n'
                'module = "echo"',
            )
        ],
        "proxy.route[1].path: '/hi/' matches the same requests as proxy.route[0] ('/hi')",
        23,
    ),
    (
        "route to an unknown module",
        [('module = "echo"', 'module = "ehco"')],
        "proxy.route[0].module: no module example.ehco",
        19,
    ),
    (
        "public routes without the ingress port",
        [("external_port = 8080\n", "")],
        "proxy.route[0]: public routes need proxy.external_port",
        15,
    ),
    (
        "egress entry is a URL",
        [('"api.example.com"', '"https://x"')],
        "proxy.egress_allowlist[0]: 'https://x' is not a domain name or '*.domain'",
        14,
    ),
    (
        "egress entry is a bare star",
        [('"*.example.org"', '"*"')],
        "proxy.egress_allowlist[1]: '*' is not a domain name or '*.domain'",
        14,
    ),
    (
        "egress wildcard of two labels",
        [('"*.example.org"', '"*.*.example.org"')],
        "proxy.egress_allowlist[1]: '*.*.example.org' is not a domain name",
        14,
    ),
    # ---- TOML that parsers disagree on -----------------------------------------------------
    (
        "a key written twice",
        [('host = "local"\nport', 'host = "local"\nhost = "local"\nport')],
        "not valid TOML",
        6,
    ),
    (
        "inline env and an [module.env] table",
        [('env = { GREETING = "hi" }', 'env = { GREETING = "hi" }\n\n[module.env]\nOTHER = "x"')],
        "not valid TOML",
        39,
    ),
    (
        "a table written twice",
        [("[defaults]", "[manager]\nadmin_port = 9095\n\n[defaults]")],
        "not valid TOML",
        8,
    ),
    (
        "the loader's own source field",
        [("[cluster]", 'source = "/etc/passwd"\n[cluster]')],
        "source: unknown key",
        1,
    ),
    # ---- placement -------------------------------------------------------------------------
    (
        "replicas above the node's engines",
        [(MODULE_NODES, MODULE_NODES + "\nreplicas = 2")],
        "module[0].replicas: 2 replicas, but node 'node-a' runs 1 engine(s) (node[0].engines)",
        37,
    ),
    (
        "replicas above the engines of a node by default placement",
        [(MODULE_NODES, "replicas = 3"), (NODE_A, NODE_A + "\nengines = 3")],
        "module[0].replicas: 3 replicas, but node 'node-b' runs 1 engine(s) (node[1].engines)",
        37,
    ),
    # ---- values that reach a shell, a generated file or ssh --------------------------------
    (
        "workdir that runs commands through install.sh",
        [('workdir = "/opt/wr"', 'workdir = "/opt/$(touch /tmp/pwned)#e;#"')],
        "defaults.workdir: '/opt/$(touch /tmp/pwned)#e;#' may only contain letters, digits "
        "and . _ / + -",
        10,
    ),
    (
        "workdir with a newline",
        [('workdir = "/opt/wr"', 'workdir = "/opt/wr\\nExecStartPre=/bin/sh"')],
        "defaults.workdir: '/opt/wr\\nExecStartPre=/bin/sh' may only contain",
        10,
    ),
    (
        "workdir with a quote",
        [('host = "10.0.1.51"', 'host = "10.0.1.51"\nworkdir = "/opt/w\\"r"')],
        "node[1].workdir: '/opt/w\"r' may only contain",
        29,
    ),
    (
        "a local workdir that resolves under an unknown home",
        [(NODE_A, NODE_A + '\nworkdir = "~nosuchuser/wr"')],
        "node[0].workdir: resolves to '{root}/~nosuchuser/wr' may only contain",
        25,
    ),
    (
        "Dockerfile lines in the base image",
        [("[defaults]", '[defaults]\ndocker_base_image = "python:3.11\\nRUN curl x | sh"')],
        "defaults.docker_base_image: 'python:3.11\\nRUN curl x | sh' is not a Docker image",
        9,
    ),
    (
        "base image with a space",
        [("[defaults]", '[defaults]\ndocker_base_image = "python 3.11"')],
        "defaults.docker_base_image: 'python 3.11' is not a Docker image reference",
        9,
    ),
    (
        "host that is an ssh option",
        [('host = "10.0.1.51"', 'host = "-oProxyCommand=touch /tmp/pwned"')],
        "node[1].host: '-oProxyCommand=touch /tmp/pwned' is not a host name or IP address",
        28,
    ),
    (
        "host with a space",
        [('host = "10.0.1.51"', 'host = "10.0.1.51 -p 2222"')],
        "node[1].host: '10.0.1.51 -p 2222' is not a host name or IP address",
        28,
    ),
    (
        "host with an IPv6 scope",
        [('host = "10.0.1.51"', 'host = "fe80::1%$(id)"')],
        "node[1].host: 'fe80::1%$(id)' is not a host name or IP address",
        28,
    ),
    (
        "manager host that is an ssh option",
        [('host = "local"\nport', 'host = "-J evil"\nport')],
        "manager.host: '-J evil' is not a host name or IP address",
        5,
    ),
    (
        "user that is an ssh option",
        [("[defaults]", '[defaults]\nuser = "-oProxyCommand=x"')],
        "defaults.user: '-oProxyCommand=x' is not a user name",
        9,
    ),
    (
        "user with a newline",
        [('host = "10.0.1.51"', 'host = "10.0.1.51"\nuser = "root\\n"')],
        "node[1].user: 'root\\n' is not a user name",
        29,
    ),
    (
        "jump host that is an ssh option",
        [("[defaults]", '[defaults]\njump_host = "-oProxyCommand=x"')],
        "defaults.jump_host: '-oProxyCommand=x' is not a jump host",
        9,
    ),
    (
        "jump host port out of range",
        [("[defaults]", '[defaults]\njump_host = "deploy@bastion:99999"')],
        "defaults.jump_host: 'deploy@bastion:99999' is not a jump host",
        9,
    ),
    (
        "python that is a command line",
        [("[defaults]", '[defaults]\npython = "python3; touch /tmp/pwned"')],
        "defaults.python: 'python3; touch /tmp/pwned' is not a command or path",
        9,
    ),
    (
        "ssh key path with a newline",
        [("[defaults]", '[defaults]\nssh_key = "~/.ssh/id\\nx"')],
        "defaults.ssh_key: '~/.ssh/id\\nx' contains the control character '\\n'",
        9,
    ),
    (
        "state URL with a newline",
        [("port = 9000", 'port = 9000\nstate = "postgres://db/wr\\nx = 1"')],
        "manager.state: 'postgres://db/wr\\nx = 1' contains the control character",
        7,
    ),
    (
        "signing key path with a newline",
        [("[defaults]", '[bundle]\nsigning_key = "key\\n.pem"\n\n[defaults]')],
        "bundle.signing_key: 'key\\n.pem' contains the control character",
        9,
    ),
]


@pytest.mark.parametrize(
    ("what", "changes", "fragment", "line"), CASES, ids=[case[0] for case in CASES]
)
def test_validate_refuses_with_place_and_expectation(
    tmp_path: Path, what: str, changes: list[tuple[str, str]], fragment: str, line: int
) -> None:
    text = VALID
    for old, new in changes:
        assert old in text, (what, old)
        text = text.replace(old, new, 1)
    _files(tmp_path)
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_cluster(path, compile_schemas=True)
    message = str(info.value)
    assert fragment.format(root=tmp_path) in message, message
    if line > 0:
        assert f"{path}:{line}:" in message, message


def test_the_table_is_valid_without_its_changes(tmp_path: Path) -> None:
    _files(tmp_path)
    (tmp_path / "cluster.toml").write_text(VALID)
    config = load_cluster(tmp_path / "cluster.toml", compile_schemas=True)
    assert len(CASES) >= 40 and config.cluster.name == "shop"

"""cluster.toml resolved once into targets: [defaults] under [manager]/[[node]], overrides on
top, typed ports, module placement, and where a recorded (no longer declared) target is."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.wire import COMPONENT_HEADER
from wrctl.config import Overrides, load_cluster, resolve_targets
from wrctl.config.targets import DEFAULT_MANAGER, NodePorts, manager_endpoint
from wrctl.errors import WrctlError

CLUSTER = """\
[cluster]
name = "shop"

[manager]
host = "10.0.0.1"
port = 9500
ssh_key = "~/.ssh/manager_key"

[defaults]
format = "systemd"
user = "ops"
ssh_key = "~/.ssh/deploy_key"
workdir = "/srv/wr"
docker_base_image = "python:3.11-slim"

[[node]]
name = "a"
host = "10.0.0.5"
data_port = 7001
engines = 2

[[node]]
name = "b"
host = "local"
format = "supervisor"
workdir = "state"

[[module]]
namespace = "x"
name = "only-a"
version = "1.0.0"
component = "m.wasm"
nodes = ["a"]

[[module]]
namespace = "x"
name = "everywhere"
version = "1.0.0"
component = "m.wasm"
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    (tmp_path / "m.wasm").write_bytes(COMPONENT_HEADER + b"m")
    (tmp_path / "cluster.toml").write_text(CLUSTER)
    return tmp_path / "cluster.toml"


def test_layers_resolve_into_typed_targets(config_path: Path) -> None:
    targets = resolve_targets(load_cluster(config_path))
    a, b = targets.nodes
    assert (a.place.address, a.place.name, a.place.host) == ("node.a", "node-a", "10.0.0.5")
    assert (a.place.format, a.place.workdir, a.place.reach.user) == ("systemd", "/srv/wr", "ops")
    assert a.place.docker_base_image == "python:3.11-slim"
    assert a.ports == NodePorts(data=7001, control=9002, admin=9091, peer=9443, engine=9100)
    assert a.engines == 2
    assert [m.name for m in a.modules] == ["only-a", "everywhere"]
    assert [m.name for m in b.modules] == ["everywhere"]
    assert b.place.workdir == str(config_path.parent.resolve() / "state")  # local: relative ok
    assert (b.place.is_local, b.place.wire_host) == (True, "127.0.0.1")
    assert targets.manager.place.reach.ssh_key == "~/.ssh/manager_key"  # [manager] wins
    assert a.place.reach.ssh_key == "~/.ssh/deploy_key"


def test_an_override_moves_where_wrctl_connects_not_where_nodes_do(config_path: Path) -> None:
    config = load_cluster(config_path)
    plain = resolve_targets(config).manager
    assert plain.endpoint == plain.node_endpoint == "10.0.0.1:9500"
    given = Overrides(manager="http://127.0.0.1:19500", known_hosts="/k")
    moved = resolve_targets(config, given)
    assert moved.manager.endpoint == "127.0.0.1:19500"
    assert moved.manager.node_endpoint == "10.0.0.1:9500"
    assert {n.place.reach.known_hosts for n in moved.nodes} == {"/k"}
    assert manager_endpoint(config, given) == "127.0.0.1:19500"
    assert manager_endpoint(config, Overrides()) == "10.0.0.1:9500"
    assert manager_endpoint(None, Overrides()) == DEFAULT_MANAGER


def test_a_recorded_target_is_found_where_its_release_was(config_path: Path) -> None:
    targets = resolve_targets(load_cluster(config_path), Overrides(accept_new_host_key=True))
    attributes = {"host": "10.0.0.9", "format": "docker", "workdir": "/opt/w", "ssh_port": "2222"}
    gone = targets.recorded("node.z", attributes)  # no longer in cluster.toml: [defaults]
    assert (gone.name, gone.host, gone.format) == ("node-z", "10.0.0.9", "docker")
    assert (gone.reach.ssh_port, gone.reach.user) == (2222, "ops")
    assert gone.reach.accept_new_host_key and gone.workdir == "/opt/w"
    moved = targets.recorded("manager", {"host": "10.0.0.2", "workdir": "/opt/w"})
    assert moved.reach.ssh_key == "~/.ssh/manager_key"  # still reached as [manager] says
    with pytest.raises(WrctlError, match=r"'zz' is not a node of .*cluster\.toml"):
        targets.node("zz")

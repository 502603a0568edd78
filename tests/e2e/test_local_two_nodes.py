"""Two nodes on this machine: caller on one, echo on the other, so the call crosses from one
proxy to the other over the peer port with mutual TLS from the cluster CA wrctl keeps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import COLD, REPO, running_cluster
from tests.infra.process import free_port

pytestmark = pytest.mark.slow


def test_a_call_crosses_nodes_over_the_peer_port(
    tmp_path: Path, components: dict[str, Path]
) -> None:
    manager, data_b = free_port(), free_port()
    schema = REPO / "examples/echo/schemas/echo.proto"
    template = f"""\
[cluster]
name = "two"

[manager]
host = "local"
port = {manager}
admin_port = {free_port()}

[defaults]
format = "supervisor"
workdir = "wr"

[[node]]
name = "a"
host = "local"
{_ports()}

[[node]]
name = "b"
host = "local"
data_port = {data_b}
{_ports(skip_data=True)}

[[module]]
namespace = "example"
name = "echo"
version = "1.0.0"
component = "{components["echo"]}"
schema = "{schema}"
nodes = ["a"]

[[module]]
namespace = "example"
name = "caller"
version = "1.0.0"
component = "{components["caller"]}"
schema = "{schema}"
nodes = ["b"]
env = {{ GREETING = "across" }}
"""
    with running_cluster(tmp_path, template, manager, data_b) as c:
        applied = c.wrctl("apply", "--auto-approve", "--parallel", "2", *COLD, timeout=600)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert re.search(r"node-a\s+applied", applied.stdout)
        assert re.search(r"node-b\s+applied", applied.stdout)
        assert "peer TLS certificate installed" in applied.stderr
        pki = tmp_path / ".wrctl" / "two" / "pki"
        assert (pki / "ca.key").stat().st_mode & 0o777 == 0o600
        tls = tmp_path / "wr" / "node-a" / "tls"
        assert (tls / "node.key").stat().st_mode & 0o777 == 0o600
        # no key in any bundle or release: only in tls/
        releases = tmp_path / "wr" / "node-a" / "releases"
        assert not [p for p in releases.rglob("*.key")]

        reply = c.wrctl("invoke", "example.caller/run")  # enters at node b's proxy
        assert reply.returncode == 0, reply.stdout + reply.stderr
        assert "across" in reply.stdout
        proxy_b_log = (tmp_path / "wr" / "logs" / "wr-b-proxy.log").read_text()
        assert "https://127.0.0.1:" in proxy_b_log or "peer" in proxy_b_log


def _ports(skip_data: bool = False) -> str:
    keys = ["control_port", "admin_port", "peer_port", "engine_port"]
    if not skip_data:
        keys.insert(0, "data_port")
    return "\n".join(f"{key} = {free_port()}" for key in keys)

"""A local cluster driven through the real wrctl CLI: cluster.toml on free ports, built
components, and a teardown that stops whatever apply started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from tests.infra.process import free_port
from wrctl.credentials import OperatorCredentials, cluster_credentials, manager_channel
from wrctl.managerapi import ManagerClient

REPO = Path(__file__).resolve().parents[2]
WRCTL = str(Path(sys.executable).parent / "wrctl")
# A first apply compiles every module from cold (about 12 s each on an idle 2-core machine,
# several times that on a loaded one): give its health gate room beyond the 60 s default.
COLD = ("--health-timeout", "300")


@dataclass
class LocalCluster:
    root: Path
    manager_port: int
    proxy_port: int
    template: str

    @property
    def file(self) -> Path:
        return self.root / "cluster.toml"

    def write(self, **replace: str) -> None:
        text = self.template
        for old, new in replace.items():
            assert old in text, old
            text = text.replace(old, new)
        self.file.write_text(text)

    def credentials(self) -> OperatorCredentials:
        """wrctl's operator credentials for this cluster, from its own CA (what the CLI uses)."""
        return cluster_credentials(self.file, "e2e")

    def client(self) -> ManagerClient:
        return ManagerClient(f"127.0.0.1:{self.manager_port}", self.credentials())

    def channel(self) -> grpc.Channel:
        """The operator's mutual-TLS channel to this cluster's manager."""
        return manager_channel(f"127.0.0.1:{self.manager_port}", self.credentials())

    def wrctl(
        self, *args: str, timeout: float = 600, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "WR_PROXY": f"127.0.0.1:{self.proxy_port}",
            "WR_MANAGER": f"127.0.0.1:{self.manager_port}",
            "COLUMNS": "200",
        }
        return subprocess.run(
            [WRCTL, *args],
            cwd=self.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
        )


def _kill_supervisord(workdir: Path) -> None:
    pidfile = workdir / "run" / "supervisord.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.killpg(os.getpgid(int(pidfile.read_text().strip())), signal.SIGTERM)


@contextlib.contextmanager
def running_cluster(
    root: Path, template: str, manager_port: int, proxy_port: int
) -> Iterator[LocalCluster]:
    """A LocalCluster for `template` in root; whatever apply started is stopped at the end."""
    cluster = LocalCluster(root, manager_port, proxy_port, template)
    cluster.write()
    try:
        yield cluster
    finally:
        if (root / "wr" / "run" / "supervisord.pid").exists():
            cluster.wrctl("destroy", "--auto-approve", timeout=60)
        _kill_supervisord(root / "wr")


def free_ports() -> dict[str, int]:
    """A free loopback port for each of the cluster's listeners (see cluster_toml)."""
    return {name: free_port() for name in ("m", "ma", "d", "c", "a", "p", "e")}


def cluster_toml(ports: dict[str, int], manager_extra: str = "") -> str:
    """cluster.toml of a local cluster "e2e" on `ports`, up to (not including) its modules;
    manager_extra: more [manager] lines."""
    return f"""\
[cluster]
name = "e2e"

[manager]
host = "local"
port = {ports["m"]}
admin_port = {ports["ma"]}
{manager_extra}heartbeat_timeout_secs = 10

[defaults]
format = "supervisor"
workdir = "wr"

[[node]]
name = "local"
host = "local"
data_port = {ports["d"]}
control_port = {ports["c"]}
admin_port = {ports["a"]}
peer_port = {ports["p"]}
engine_port = {ports["e"]}
"""


def echo_module_toml(components: dict[str, Path], env: str = "") -> str:
    """The [[module]] of example.echo (built component, its schema, tracing granted)."""
    return f"""
[[module]]
namespace = "example"
name = "echo"
version = "1.0.0"
component = "{components["echo"]}"
schema = "{REPO / "examples/echo/schemas/echo.proto"}"
capabilities = ["tracing"]
{env}"""


@pytest.fixture
def local_cluster(tmp_path: Path, components: dict[str, Path]) -> Iterator[LocalCluster]:
    ports = free_ports()
    template = (
        cluster_toml(ports)
        + echo_module_toml(components)
        + f"""
[[module]]
namespace = "example"
name = "caller"
version = "1.0.0"
component = "{components["caller"]}"
schema = "{REPO / "examples/echo/schemas/echo.proto"}"
capabilities = ["tracing"]
env = {{ GREETING = "hello" }}
"""
    )
    with running_cluster(tmp_path, template, ports["m"], ports["d"]) as cluster:
        yield cluster

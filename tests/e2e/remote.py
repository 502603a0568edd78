"""A cluster on fake remote hosts driven through the real wrctl CLI over SSH: the manager on
the first host, one node per host, the caller on the second node calling echo on the first
across the peer link, and node-b's external ingress serving `/run` to the test."""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tests.e2e.conftest import REPO, WRCTL
from tests.infra.process import free_port, wait_until


class Host(Protocol):
    name: str
    address: str
    port: int
    user: str
    key_path: Path
    known_hosts_path: Path

    def host_path(self, remote: str) -> Path: ...


@dataclass
class RemoteCluster:
    root: Path
    hosts: list[Host]
    fmt: str
    components: dict[str, Path]
    workdir: str = "/opt/wruntime"
    external_port: int = 8080
    extra: dict[str, str] = field(default_factory=dict)  # [[node]] name -> extra lines
    defaults: str = ""  # extra lines of [defaults]

    @property
    def file(self) -> Path:
        return self.root / "cluster.toml"

    def text(self, greeting: str = "hello", echo: Path | None = None) -> str:
        a, b = self.hosts[0], self.hosts[1]
        schema = REPO / "examples/echo/schemas/echo.proto"
        nodes = ""
        for index, (name, host) in enumerate((("node-a", a), ("node-b", b))):
            ports = (
                # docker nodes of one test daemon must not share ports
                f"data_port = {9001 + 10 * index}\ncontrol_port = {9002 + 10 * index}\n"
                f"admin_port = {9091 + 10 * index}\nengine_port = {9100 + 10 * index}\n"
            )
            nodes += (
                f'[[node]]\nname = "{name}"\nhost = "{host.address}"\nssh_port = {host.port}\n'
                f"{ports}{self.extra.get(name, '')}\n"
            )
        return f"""\
[cluster]
name = "remote"

[manager]
host = "{a.address}"
ssh_port = {a.port}

[defaults]
format = "{self.fmt}"
user = "{a.user}"
ssh_key = "{a.key_path}"
workdir = "{self.workdir}"
python = "/usr/bin/python3"
sudo = true                    # to create the workdir under /opt
{self.defaults}
{nodes}
[proxy]
external_port = {self.external_port}

[[proxy.route]]
path = "/run"
namespace = "example"
module = "caller"

[[module]]
namespace = "example"
name = "echo"
version = "1.0.0"
component = "{echo or self.components["echo"]}"
schema = "{schema}"
capabilities = ["tracing"]
nodes = ["node-a"]

[[module]]
namespace = "example"
name = "caller"
version = "1.0.0"
component = "{self.components["caller"]}"
schema = "{schema}"
capabilities = ["tracing"]
nodes = ["node-b"]
env = {{ GREETING = "{greeting}" }}
"""

    def write(self, greeting: str = "hello", echo: Path | None = None) -> None:
        self.file.write_text(self.text(greeting, echo))

    def wrctl(
        self, *args: str, known_hosts: Path | None = None, timeout: float = 900
    ) -> subprocess.CompletedProcess[str]:
        """wrctl in the cluster's dir; commands that reach hosts get --known-hosts."""
        argv = [WRCTL, *args]
        if args and args[0] in {"apply", "destroy", "rollback", "logs"}:
            argv += ["--known-hosts", str(known_hosts or self.hosts[0].known_hosts_path)]
        return subprocess.run(
            argv,
            cwd=self.root,
            env={**os.environ, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )

    def call(self, deadline_s: float = 75.0) -> str:
        """POST /run at node-b's external ingress (caller -> echo on node-a); the body.

        While echo is away caller answers 500, and five of those open caller's breaker for
        30 s (the proxy's default), so the deadline outlasts one open period and the poll is
        slow enough not to be what opens it."""
        url = f"http://{self.hosts[1].address}:{self.external_port}/run"

        def once() -> str | None:
            request = urllib.request.Request(url, data=b"", method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as reply:
                    return str(reply.read().decode())
            except urllib.error.HTTPError as exc:
                raise AssertionError(f"{url}: {exc.code} {exc.read()[:300]!r}") from None

        return str(wait_until(once, deadline_s, f"{url} to answer", interval_s=0.25))


def external_port() -> int:
    return free_port()


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr

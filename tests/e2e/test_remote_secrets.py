"""Secrets over SSH: an apply with a PostgreSQL state URL whose password, and the node's TLS
key, never appear in any command line sent to a host; and destroy after a failed first
deploy leaves nothing on the hosts. Runs wrctl's library in this process, so every command
paramiko sends is seen."""

from __future__ import annotations

import contextlib
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.wire import COMPONENT_HEADER
from tests.e2e.conftest import REPO
from tests.infra.postgres import PostgresServer
from tests.infra.process import free_port
from tests.infra.ssh_hosts import SshHost
from tests.integration.deploy.support import record_ssh_commands
from wrctl.config import load_targets
from wrctl.config.targets import Overrides
from wrctl.deploy.apply import ApplyFailed, ApplyOptions, apply_plan, destroy_cluster
from wrctl.observe import observe_live
from wrctl.plan import make_plan

PASSWORD = "pw-7f3a%3Anot%5Cin-argv"  # pw-7f3a:not\in-argv, percent-encoded in the URL


@contextlib.contextmanager
def forward(listen: str, to: tuple[str, int]) -> Iterator[int]:
    """A TCP forwarder on `listen` (a port the hosts reach) to `to`; yields its port."""
    server = socket.create_server((listen, free_port(listen)))

    def pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = server.accept()
                upstream = socket.create_connection(to)
                for a, b in ((client, upstream), (upstream, client)):
                    threading.Thread(target=pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return record_ssh_commands(monkeypatch)


def _cluster_toml(a: SshHost, b: SshHost, workdir: str, state: str, echo: Path) -> str:
    return f"""\
[cluster]
name = "secrets"

[manager]
host = "{a.address}"
ssh_port = {a.port}
state = '{state}'

[defaults]
format = "supervisor"
user = "{a.user}"
ssh_key = "{a.key_path}"
workdir = "{workdir}"
python = "/usr/bin/python3"
sudo = true

[[node]]
name = "a"
host = "{b.address}"
ssh_port = {b.port}

[[module]]
namespace = "example"
name = "echo"
version = "1.0.0"
component = "{echo}"
schema = "{REPO / "examples/echo/schemas/echo.proto"}"
"""


@pytest.mark.timeout(900)
def test_secrets_never_cross_a_command_line_and_destroy_leaves_nothing(
    ssh_hosts: list[SshHost], postgres: PostgresServer, sent: list[str], tmp_path: Path
) -> None:
    a, b = ssh_hosts[0], ssh_hosts[1]
    workdir = f"{a.remote_opt}/wr-secrets"
    broken = tmp_path / "broken.wasm"  # node-a's first deploy fails its health gate
    broken.write_bytes(COMPONENT_HEADER + b" not a component")
    db = postgres.create_database(f"wrsecrets{free_port()}").rsplit("/", 1)[-1]
    with forward(a.gateway, (postgres.host, postgres.port)) as port:
        state = f"postgresql://{postgres.user}:{PASSWORD}@{a.gateway}:{port}/{db}"
        cluster = tmp_path / "cluster.toml"
        cluster.write_text(_cluster_toml(a, b, workdir, state, broken))
        targets = load_targets(cluster, Overrides(known_hosts=str(a.known_hosts_path)))
        report: list[str] = []
        with pytest.raises(ApplyFailed, match="node-a"):
            plan = make_plan(targets, observe_live(targets))
            apply_plan(plan, lambda t, m: report.append(f"{t}: {m}"), ApplyOptions(30.0))

        pgpass = Path(a.host_path(f"{workdir}/manager/data/pgpass"))
        assert pgpass.read_text() == "*:*:*:*:pw-7f3a\\:not\\\\in-argv\n"
        key = Path(b.host_path(f"{workdir}/node-a/tls/node.key"))
        assert stat.S_IMODE(pgpass.stat().st_mode) == stat.S_IMODE(key.stat().st_mode) == 0o600
        key_lines = [line for line in key.read_text().splitlines() if "-----" not in line]

        destroy_cluster(make_plan(targets, observe_live(targets)), lambda t, m: None)

    assert sent, "no command went over SSH: the spy saw nothing"
    for secret in ["pw-7f3a", *key_lines]:
        leaks = [c for c in sent if secret in c]
        assert not leaks, f"{secret[:8]}... in a command line: {leaks[0][:200]}"
    for host in (a, b):
        left = Path(host.host_path(workdir))
        assert not left.exists(), f"{host.name}: {sorted(p.name for p in left.iterdir())}"

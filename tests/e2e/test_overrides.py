"""Every wrctl command honours the same overrides: WR_MANAGER (and --manager) sends it to
that manager, never to the one cluster.toml names (over mutual TLS, with the operator
certificate wrctl issues from the cluster's CA); --known-hosts and --accept-new-host-key
decide how hosts are checked. cluster.toml's manager port has nothing listening, so a
command that ignored the override would say the manager is unreachable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import MANAGER_TLS_NAME, sync_channel
from runtime.wire import COMPONENT_HEADER
from tests.e2e.tlsmanager import adopt_ca, operator_dir, tls_manager
from tests.infra.process import free_port
from tests.infra.ssh_hosts import SshHost
from tests.integration.manager.builders import module, registration, release
from tests.integration.manager.test_process import ManagerProcess
from wrctl.certs import write_credentials
from wrctl.credentials import OperatorCredentials, cluster_credentials, files_in
from wrctl.managerapi import ManagerClient
from wrctl.pki import ClusterCA
from wrctl.schemas import compile_schema

WRCTL = str(Path(sys.executable).parent / "wrctl")
CLUSTER = "ovr"
ECHO_PROTO = Path(__file__).resolve().parents[2] / "examples/echo/schemas/echo.proto"


@pytest.fixture(scope="module")
def manager_ca(tmp_path_factory: pytest.TempPathFactory) -> ClusterCA:
    return ClusterCA(tmp_path_factory.mktemp("ovr-ca"), CLUSTER)


@pytest.fixture(scope="module")
def manager(
    tmp_path_factory: pytest.TempPathFactory, manager_ca: ClusterCA
) -> Iterator[ManagerProcess]:
    """A real wr-manager on a free port (mutual TLS with the cluster's CA), holding a secret
    (so its serial is not 0), a recorded release of node-a and an engine of node-a serving
    the echo module with its schema (registered as that node, which the release allows)."""
    process = tls_manager(tmp_path_factory.mktemp("mgr") / "m", manager_ca)
    proc = process.start_ready()
    address = f"127.0.0.1:{process.grpc_port}"
    operator = operator_dir(manager_ca, tmp_path_factory.mktemp("op"))
    client = ManagerClient(address, OperatorCredentials(files_in(operator), "test"))
    node = tmp_path_factory.mktemp("node")
    write_credentials(manager_ca.node_credentials("node-a", "127.0.0.1"), node)
    channel = sync_channel(address, files_in(node, "node"), MANAGER_TLS_NAME)
    try:
        client.set_secret("example", "k", "v")
        with client.apply_lock("setup") as lock:
            client.record(release("node-a", "bundle-1"), lock.lock_id)
        echo = module(schema=compile_schema(ECHO_PROTO))
        stub = pb_grpc.ManagerServiceStub(channel)
        stub.RegisterEngine(registration(modules=[echo]), timeout=10)
        yield process
    finally:
        channel.close()
        client.close()
        proc.stop()


@pytest.fixture
def cluster(tmp_path: Path, manager_ca: ClusterCA) -> Path:
    """A local cluster.toml whose manager port has nothing behind it; its CA (which wrctl
    keeps next to it) is the one of the `manager` fixture."""
    (tmp_path / "echo.wasm").write_bytes(COMPONENT_HEADER + b"not really")
    (tmp_path / "cluster.toml").write_text(
        f'[cluster]\nname = "{CLUSTER}"\n[manager]\nhost = "local"\nport = {free_port()}\n'
        '[defaults]\nformat = "supervisor"\nworkdir = "wr"\n'
        f'[[node]]\nname = "a"\nhost = "local"\ndata_port = {free_port()}\n'
        '[[module]]\nnamespace = "example"\nname = "echo"\nversion = "1.0.0"\n'
        'component = "echo.wasm"\n'
    )
    adopt_ca(manager_ca, tmp_path / "cluster.toml", CLUSTER)
    return tmp_path / "cluster.toml"


def wrctl(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if k not in ("WR_MANAGER", "WR_PROXY", "WR_CREDENTIALS")
    }
    return subprocess.run(
        [WRCTL, *args],
        cwd=cwd,
        env={**environ, "COLUMNS": "200", **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_every_command_reaches_the_manager_wr_manager_names(
    manager: ManagerProcess, cluster: Path
) -> None:
    address = f"127.0.0.1:{manager.grpc_port}"
    env = {"WR_MANAGER": address}
    root = cluster.parent
    client = ManagerClient(address, cluster_credentials(cluster, CLUSTER))
    try:
        serial = client.state().serial
        assert serial > 0

        ignored = wrctl(root, "plan")  # the control: cluster.toml's manager is not there
        assert "The manager is not running yet" in ignored.stderr, ignored.stderr
        plan = wrctl(root, "plan", "--json", env=env)
        assert plan.returncode == 0, plan.stderr
        assert json.loads(plan.stdout)["serial"] == serial
        flag = wrctl(root, "plan", "--json", "--manager", address)
        assert json.loads(flag.stdout)["serial"] == serial, flag.stderr

        history = wrctl(root, "history", "--json", env=env)
        assert history.returncode == 0, history.stderr
        assert [r["bundle_digest"] for r in json.loads(history.stdout)] == [
            release("node-a", "bundle-1").bundle_digest
        ]
        status = wrctl(root, "status", "-c", "cluster.toml", env=env)
        assert status.returncode == 0 and f"Manager {address} " in status.stdout, status.stderr

        # apply, destroy and rollback ask that manager for its lock, held here
        with client.apply_lock("the override test") as lock:
            for args in (
                ("apply", "--auto-approve"),
                ("destroy", "--auto-approve"),
                ("rollback", "--auto-approve"),
            ):
                held = wrctl(root, *args, env=env)
                assert held.returncode == 1, (args, held.stdout, held.stderr)
                assert "the apply lock is held by" in held.stderr, (args, held.stderr)
                assert "the override test" in held.stderr, (args, held.stderr)
            unlocked = wrctl(root, "force-unlock", lock.lock_id, "-c", "cluster.toml", env=env)
            assert unlocked.returncode == 0, unlocked.stderr
            assert not client.state().HasField("lock")
    finally:
        client.close()


class _Proxy(BaseHTTPRequestHandler):
    seen: ClassVar[list[tuple[str, bytes]]] = []  # (content-type, body) of each request

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"] or 0))
        self.seen.append((self.headers["content-type"], body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_invoke_asks_the_overridden_manager_for_the_schema(
    manager: ManagerProcess, cluster: Path
) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {
            "WR_MANAGER": f"127.0.0.1:{manager.grpc_port}",
            "WR_PROXY": f"127.0.0.1:{server.server_address[1]}",
        }
        args = ("invoke", "example.echo/echo.EchoService/Echo", "--data", '{"message": "hi"}')
        result = wrctl(cluster.parent, *args, env=env)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    # the schema came from that manager: the JSON went out as the protobuf request
    assert _Proxy.seen == [("application/protobuf", b"\n\x02hi")]


def test_logs_checks_hosts_against_the_known_hosts_given(
    ssh_hosts: list[SshHost], tmp_path: Path
) -> None:
    host = ssh_hosts[0]
    (tmp_path / "cluster.toml").write_text(
        '[cluster]\nname = "kh"\n'
        f'[defaults]\nformat = "supervisor"\nuser = "{host.user}"\n'
        f'ssh_key = "{host.key_path}"\nworkdir = "{host.remote_opt}/wr-kh"\n'
        f'[[node]]\nname = "a"\nhost = "{host.address}"\nssh_port = {host.port}\n'
    )
    known = tmp_path / "known_hosts"
    known.write_text("")
    refused = wrctl(tmp_path, "logs", "a", "--known-hosts", str(known))
    assert refused.returncode == 1
    assert "unknown host key" in refused.stderr and str(known) in refused.stderr
    accepted = wrctl(tmp_path, "logs", "a", "--known-hosts", str(known), "--accept-new-host-key")
    assert "unknown host key" not in accepted.stderr, accepted.stderr
    assert host.address in known.read_text()

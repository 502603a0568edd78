"""Several managers under wrctl: a cluster applied locally with its manager on PostgreSQL, a
second manager started by hand on the same database (same CA, same secrets key), and wrctl
pointed at both (`--manager B,A`). A second apply runs while B, the manager wrctl talks to
first, is killed and started again: the apply completes (or fails cleanly) and the next plan
is correct; `wrctl status` shows each manager's health."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    COLD,
    WRCTL,
    LocalCluster,
    cluster_toml,
    echo_module_toml,
    free_ports,
    running_cluster,
)
from tests.infra.postgres import PostgresServer
from tests.infra.process import ManagedProcess, free_port, wait_until
from tests.integration.manager.conftest import fresh_database
from tests.integration.manager.test_process import WR_MANAGER
from wrctl.certs import write_credentials
from wrctl.managerapi import ManagerClient
from wrctl.pki import cluster_ca

pytestmark = pytest.mark.slow


def _template(ports: dict[str, int], dsn: str, components: dict[str, Path]) -> str:
    return cluster_toml(ports, f'state = "{dsn}"\n') + echo_module_toml(
        components, 'env = { GREETING = "one" }\n'
    )


class SecondManager:
    """Manager B on the cluster's database, CA and secrets key, on fixed ports."""

    def __init__(self, cluster: LocalCluster, dsn: str) -> None:
        self.root = cluster.root / "manager-b"
        self.port, self.admin = free_port(), free_port()
        tls = self.root / "tls"
        write_credentials(cluster_ca(cluster.file, "e2e").manager_credentials([]), tls)
        self.config = self.root / "manager.toml"
        self.config.write_text(
            f'cluster = "e2e"\nlisten_address = "127.0.0.1:{self.port}"\n'
            f'admin_address = "127.0.0.1:{self.admin}"\ndata_dir = "data"\nstate = "{dsn}"\n'
            "engine_heartbeat_timeout_secs = 10\n[jobs]\ndispatch = false\n"
            f'[tls]\ncert_path = "{tls}/manager.crt"\nkey_path = "{tls}/manager.key"\n'
            f'ca_cert_path = "{tls}/ca.crt"\n'
        )
        key = (cluster.root / "wr/manager/data/secrets.key").read_text().strip()
        self.env = {"WR_SECRETS_KEY": key}
        self.runs = 0
        self.proc: ManagedProcess | None = None

    def start(self) -> None:
        self.runs += 1
        self.proc = ManagedProcess(
            [str(WR_MANAGER), "--config", str(self.config)],
            self.root / f"manager-{self.runs}.log",
            env=self.env,
            name="wr-manager-b",
        ).start()
        self.proc.wait_ready(f"http://127.0.0.1:{self.admin}/healthz", 30)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.stop()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


@pytest.fixture
def ha_cluster(
    tmp_path: Path, components: dict[str, Path], postgres: PostgresServer
) -> Iterator[tuple[LocalCluster, str]]:
    ports = free_ports()
    with fresh_database(postgres) as dsn:
        template = _template(ports, dsn, components)
        with running_cluster(tmp_path, template, ports["m"], ports["d"]) as cluster:
            yield cluster, dsn


def _wrctl(cluster: LocalCluster, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "WR_PROXY": f"127.0.0.1:{cluster.proxy_port}", "COLUMNS": "200"}
    env.pop("WR_MANAGER", None)
    return subprocess.Popen(
        [WRCTL, *args],
        cwd=cluster.root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def _done(proc: subprocess.Popen[str], timeout: float = 600) -> tuple[int, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out + err


def test_apply_while_a_manager_restarts(ha_cluster: tuple[LocalCluster, str]) -> None:
    c, dsn = ha_cluster
    code, output = _done(_wrctl(c, "apply", "--auto-approve", *COLD))
    assert code == 0, output
    b = SecondManager(c, dsn)
    b.start()
    try:
        both = f"127.0.0.1:{b.port},127.0.0.1:{c.manager_port}"  # B first
        a_client = ManagerClient(f"127.0.0.1:{c.manager_port}", c.credentials())
        try:
            expected = sorted([f"127.0.0.1:{b.port}", f"127.0.0.1:{c.manager_port}"])
            # B answers before its first presence row is written: poll for it
            wait_until(
                lambda: sorted(m.grpc_address for m in a_client.managers()) == expected,
                30,
                "ListManagers to list both managers",
            )

            c.write(**{'GREETING = "one"': 'GREETING = "two"'})
            apply = _wrctl(c, "apply", "--auto-approve", "--manager", both)
            # Once the apply holds the lock (through B), B dies and comes back.
            wait_until(
                lambda: a_client.state().HasField("lock") or apply.poll() is not None,
                120,
                "the apply to take the lock",
            )
            killed = time.monotonic()
            b.kill()
            b.start()
            restarted = time.monotonic() - killed
            code, output = _done(apply)
        finally:
            a_client.close()
        print(f"apply exit {code}; B down for {restarted:.1f}s\n{output}")
        if code != 0:  # a clean failure: one error, the lock given back, nothing half-recorded
            assert "Traceback" not in output, output
            assert not ManagerClient(both.split(","), c.credentials()).state().HasField("lock")
            code, output = _done(_wrctl(c, "apply", "--auto-approve", "--manager", both))
            assert code == 0, output
        assert "Apply complete." in output
        plan = _wrctl(c, "plan", "--detailed-exitcode", "--manager", both)
        code, output = _done(plan)
        assert code == 0, output  # the next plan is correct: nothing left to do
        assert (
            "two"
            in _done(
                _wrctl(
                    c,
                    "invoke",
                    "example.echo/echo.EchoService/Echo",
                    "--data",
                    '{"message": "two"}',
                    "--manager",
                    both,
                )
            )[1]
        )

        # status: each manager, its heartbeat row and whether it answers; then with B down.
        for b_up in (True, False):
            if not b_up:
                b.kill()
            status = _wrctl(c, "status", "--json", "--manager", both)
            out, err = status.communicate(timeout=120)
            assert status.returncode == 0, out + err
            shown = {m["address"]: m for m in json.loads(out)["managers"]}
            assert shown[f"127.0.0.1:{c.manager_port}"]["answers"]
            assert shown[f"127.0.0.1:{b.port}"]["answers"] is b_up
            assert all(m["listed"] for m in shown.values())  # B's row outlives it (expiry)
        # With B (first in the list) down, invoke still finds the schema, through A.
        echo = _wrctl(
            c,
            "invoke",
            "example.echo/echo.EchoService/Echo",
            "--data",
            '{"message": "via A"}',
            "--manager",
            both,
        )
        out, err = echo.communicate(timeout=120)
        assert echo.returncode == 0 and json.loads(out) == {"message": "via A"}, out + err
    finally:
        b.stop()

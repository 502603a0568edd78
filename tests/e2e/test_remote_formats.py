"""wrctl against real hosts reached over SSH with host-key checking, once per service
format: supervisor on plain sshd hosts, systemd on hosts whose PID 1 is a real systemd,
docker on hosts with their own Docker daemon. The whole day-1/day-2 loop, failure paths
included."""

from __future__ import annotations

import contextlib
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.wire import COMPONENT_HEADER
from tests.e2e.conftest import COLD, WRCTL
from tests.e2e.remote import Host, RemoteCluster, ok
from tests.infra import policy
from wrctl.credentials import cluster_credentials, manager_channel

pytestmark = pytest.mark.slow


def fingerprint(host: Host) -> str:
    return str(host.host_key_fingerprint)


def _state(c: RemoteCluster) -> pb.GetClusterStateResponse:
    """The manager's state, asked with the operator certificate of the cluster's own CA."""
    credentials = cluster_credentials(c.file, "remote")
    with manager_channel(f"{c.hosts[0].address}:9000", credentials) as channel:
        return pb_grpc.ManagerServiceStub(channel).GetClusterState(
            pb.GetClusterStateRequest(), timeout=10
        )


@contextlib.contextmanager
def cut_off(host: Host, from_address: str) -> Iterator[None]:
    """No packet from `host` reaches `from_address` (a blackhole route in the host's network
    namespace) until the block exits: services there keep running but cannot reach it."""
    ns = getattr(host, "namespace", None)
    if ns is None:
        policy.unavailable(f"a network namespace for {host.name}", "use netns-mode fake hosts")
    route = ["ip", "netns", "exec", ns, "ip", "route"]
    subprocess.run([*route, "add", "blackhole", f"{from_address}/32"], check=True, timeout=30)
    try:
        yield
    finally:
        subprocess.run([*route, "del", "blackhole", f"{from_address}/32"], check=True, timeout=30)


def _read_until(proc: subprocess.Popen[str], marker: str, deadline_s: float) -> str:
    """proc's stderr up to the first line holding marker (or EOF, or the deadline)."""
    assert proc.stderr is not None
    seen = ""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline and marker not in seen:
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if ready:
            line = proc.stderr.readline()
            if not line:
                break
            seen += line
    return seen


HOSTS = {"supervisor": "ssh_hosts", "systemd": "systemd_hosts", "docker": "isolated_docker_hosts"}


@pytest.fixture(params=sorted(HOSTS))
def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, components: dict[str, Path]
) -> Iterator[RemoteCluster]:
    """The remote cluster of one format on that format's session hosts. The hosts are shared
    with other tests, so whatever a failed run left deployed is destroyed at the end."""
    fmt = str(request.param)
    hosts: list[Host] = list(request.getfixturevalue(HOSTS[fmt]))
    c = RemoteCluster(tmp_path, hosts, fmt, components)
    if fmt == "docker":
        c.defaults = f'docker_base_image = "{hosts[0].base_image}"\n'
    yield c
    if c.file.exists():
        c.extra = {}
        c.write()
        c.wrctl("destroy", "--auto-approve", timeout=300)


@pytest.mark.timeout(1200)
def test_deploy_over_ssh(cluster: RemoteCluster, tmp_path: Path) -> None:
    c = cluster
    a, b = c.hosts[0], c.hosts[1]

    # Host keys: an unknown host is refused with its fingerprint; a changed key always.
    print("step:", "Host keys: an unknown host is refused wi", flush=True)
    c.write()
    empty = tmp_path / "known_hosts.empty"
    empty.write_text("")
    unknown = c.wrctl("apply", "--auto-approve", known_hosts=empty)
    assert unknown.returncode == 1
    assert fingerprint(a) in unknown.stderr and "--accept-new-host-key" in unknown.stderr
    changed = tmp_path / "known_hosts.changed"
    b_key = next(
        line.split(" ", 1)[1]
        for line in a.known_hosts_path.read_text().splitlines()
        if line.startswith(f"{b.address} ") or line.startswith(f"[{b.address}]")
    )
    changed.write_text(f"{a.address} {b_key}\n")
    refused = c.wrctl("apply", "--auto-approve", "--accept-new-host-key", known_hosts=changed)
    assert refused.returncode == 1
    assert "changed" in refused.stderr.lower() and fingerprint(a) in refused.stderr

    # Preflight: node-b names a Python that is not there -> one clear line; node-a is applied.
    print("step:", "Preflight: node-b names a Python that is", flush=True)
    c.extra = {"node-b": 'python = "/usr/bin/python3.99"\n'}
    c.write()
    first = c.wrctl("apply", "--auto-approve", "--parallel", "2", *COLD)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "/usr/bin/python3.99" in first.stderr
    assert re.search(r"node-a\s+applied", first.stderr), first.stderr
    assert re.search(r"node-b\s+failed", first.stderr), first.stderr
    assert "TLS certificate installed" in first.stderr  # issued by the CA kept here
    assert (tmp_path / ".wrctl" / "remote" / "pki" / "ca.key").stat().st_mode & 0o777 == 0o600

    c.extra = {}
    c.write()
    plan = c.wrctl("plan", "--detailed-exitcode")
    assert plan.returncode == 2 and "node.node-b will be created" in plan.stdout, plan.stdout
    second = ok(c.wrctl("apply", "--auto-approve", *COLD))
    assert "node-b: bundle" in second and "node-a: bundle" not in second
    assert "hello" in c.call()  # node-b's ingress -> caller -> echo on node-a via the peer port

    # No-op: nothing uploaded, nothing restarted.
    print("step:", "No-op: nothing uploaded, nothing restart", flush=True)
    again = ok(c.wrctl("apply", "--auto-approve"))
    assert "No changes." in again and "upload" not in again and "restarted" not in again

    # A module change on node-b restarts node-b only.
    print("step:", "A module change on node-b restarts node-", flush=True)
    c.write(greeting="bonjour")
    changed_out = ok(c.wrctl("apply", "--auto-approve"))
    assert "node-b: restarted" in changed_out and "node-a:" not in changed_out
    assert "bonjour" in c.call()

    # A broken echo fails node-a's gate; node-a goes back to its release; calls still work.
    print("step:", "A broken echo fails node-a's gate; node-", flush=True)
    broken = tmp_path / "broken.wasm"
    broken.write_bytes(COMPONENT_HEADER + b" not a component")
    c.write(greeting="bonjour", echo=broken)
    failed = c.wrctl("apply", "--auto-approve", "--health-timeout", "20")
    assert failed.returncode == 1
    assert re.search(r"node-a\s+rolled-back", failed.stderr), failed.stderr
    assert "Last log lines of node-node-a" in failed.stderr, failed.stderr
    assert "bonjour" in c.call()

    # Logs over SSH.
    print("step:", "Logs over SSH.", flush=True)
    logs = ok(c.wrctl("logs", "node-a", "proxy", "--lines", "5", "-c", "cluster.toml"))
    assert len(logs.strip().splitlines()) >= 1

    # Killed midway: the lock is released and the next plan still shows the change. node-b
    # cannot reach the manager until the test lets go, so its new engines cannot register and
    # the apply is certainly still at the health gate when the interrupt lands.
    print("step:", "Killed midway: the lock is released and ", flush=True)
    c.write(greeting="hola")
    with cut_off(b, from_address=a.address):
        proc = subprocess.Popen(
            [WRCTL, "apply", "--auto-approve", "--known-hosts", str(a.known_hosts_path)],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen = _read_until(proc, "waiting for the health gate", deadline_s=300)
        assert "waiting for the health gate" in seen, seen
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 130
    assert not _state(c).HasField("lock")
    pending = c.wrctl("plan", "--detailed-exitcode")
    assert pending.returncode == 2 and '"bonjour" -> "hola"' in pending.stdout, pending.stdout
    ok(c.wrctl("apply", "--auto-approve"))
    assert "hola" in c.call()

    gone = ok(c.wrctl("destroy", "--auto-approve"))
    assert "Destroy complete." in gone
    for host in (a, b):  # nothing wrctl put there is left, keys included
        assert not Path(host.host_path(c.workdir)).exists(), f"{host.name}: {c.workdir} left"

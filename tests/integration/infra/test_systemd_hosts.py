"""Fake hosts that boot real systemd: reached over SSH, deployable like a real host, isolated
from this machine's own /tmp, /etc and devices, and gone without a trace after poweroff."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.infra import _cgroups, _netns, _stale, _systemd_boot
from tests.infra.process import ManagedProcess, wait_until
from tests.infra.systemd_hosts import SystemdHost, fake_systemd_hosts, remove_stale

HELLO_PORT = 8000
UNIT = "wrtest-hello.service"


def _wait_settled(host: SystemdHost) -> str:
    """is-system-running once boot has finished (it says `starting` until then)."""

    def settled() -> str | None:
        state = host.system_state()
        return None if state in ("initializing", "starting") else state

    return wait_until(settled, 20.0, f"{host.name} to finish booting")


def _deploy_hello(host: SystemdHost) -> None:
    """What a systemd deploy does over SSH: files in /opt, a unit in /etc/systemd/system
    (with sudo), daemon-reload, enable --now."""
    unit = "\n".join(
        [
            "[Unit]",
            "Description=wrtest hello",
            "[Service]",
            f"ExecStartPre=/bin/echo wrtest-hello starting on {host.name}",
            "ExecStart=/usr/bin/python3 -u -m http.server"
            f" --bind {host.address} --directory /opt/hello {HELLO_PORT}",
            "[Install]",
            "WantedBy=multi-user.target",
            "",
        ]
    )
    with host.connect() as conn:
        conn.sudo("mkdir -p /opt/hello", hide=True)
        conn.put(io.BytesIO(f"hello from {host.name}\n".encode()), "/tmp/index.html")
        conn.put(io.BytesIO(unit.encode()), f"/tmp/{UNIT}")
        conn.sudo("mv /tmp/index.html /opt/hello/index.html", hide=True)
        conn.sudo(f"mv /tmp/{UNIT} /etc/systemd/system/{UNIT}", hide=True)
        conn.sudo("systemctl daemon-reload", hide=True)
        conn.sudo(f"systemctl enable --now {UNIT}", hide=True)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        body: bytes = response.read()
    return body.decode()


def test_boots_to_running_with_systemd_as_pid_1(systemd_hosts: list[SystemdHost]) -> None:
    for host in systemd_hosts:
        assert _wait_settled(host) == "running", host.failed_units()
        assert host.failed_units() == []
        with host.connect() as conn:
            out = conn.run("ps -o comm= -p 1; hostname; ip -4 -o addr show dev eth0", hide=True)
            # What sd_booted() and deploy preflights look at (absent on plain ssh_hosts).
            assert conn.run("test -d /run/systemd/system", hide=True, warn=True).ok
        comm, hostname, addr = out.stdout.splitlines()
        assert (comm, hostname) == ("systemd", host.name)
        assert f"inet {host.address}/24" in addr


def test_a_unit_deployed_over_ssh_serves_and_logs(systemd_hosts: list[SystemdHost]) -> None:
    host = systemd_hosts[0]
    _deploy_hello(host)
    url = f"http://{host.address}:{HELLO_PORT}/index.html"
    body = wait_until(lambda: _get(url), 10.0, f"{UNIT} on {host.name} to answer")
    assert body == f"hello from {host.name}\n"
    with host.connect() as conn:
        assert conn.run(f"systemctl is-enabled {UNIT}", hide=True).stdout.strip() == "enabled"
        assert conn.run(f"systemctl is-active {UNIT}", hide=True).stdout.strip() == "active"

        def journal_with_request() -> str | None:
            text = str(conn.sudo(f"journalctl -u {UNIT} --no-pager -o cat", hide=True).stdout)
            return text if "GET /index.html" in text else None

        logged = wait_until(journal_with_request, 10.0, "the request in the unit's journal")
    assert f"wrtest-hello starting on {host.name}" in logged
    # The unit, its enablement and the files landed in this host's own dirs only.
    assert host.host_path(f"/etc/systemd/system/{UNIT}").exists()
    assert host.host_path(f"/etc/systemd/system/multi-user.target.wants/{UNIT}").is_symlink()
    assert host.host_path("/opt/hello/index.html").exists()
    assert not Path(f"/etc/systemd/system/{UNIT}").exists()
    other = systemd_hosts[1]
    assert not other.host_path(f"/etc/systemd/system/{UNIT}").exists()


def test_the_machine_is_read_only_to_the_host_but_etc_is_its_own(
    systemd_hosts: list[SystemdHost],
) -> None:
    host = systemd_hosts[1]
    marker = f"wrtest-private-{os.getpid()}"
    with host.connect() as conn:
        denied = conn.sudo("touch /usr/wrtest-probe", hide=True, warn=True)
        conn.sudo(f"sh -c 'echo {host.name} > /etc/{marker}'", hide=True)
        conn.sudo(f"touch /root/{marker}", hide=True)
        conn.run(f"touch /tmp/{marker}", hide=True)
        mounts = conn.run("findmnt -n -o FSTYPE /tmp; findmnt -n -o FSTYPE /run", hide=True)
    assert denied.failed and "Read-only file system" in denied.stderr
    assert not Path("/usr/wrtest-probe").exists()
    # /etc is an overlay: the host's writes land in its own dir, never in this machine's /etc.
    assert host.host_path(f"/etc/{marker}").read_text() == f"{host.name}\n"
    assert not Path(f"/etc/{marker}").exists()
    assert host.host_path(f"/root/{marker}").exists()
    assert not Path(f"/root/{marker}").exists()
    assert not Path(f"/tmp/{marker}").exists()
    assert mounts.stdout.split() == ["tmpfs", "tmpfs"]


def _dir_listing(path: Path) -> list[str]:
    return sorted(f"{p} -> {os.readlink(p) if p.is_symlink() else ''}" for p in path.rglob("*"))


def _leftovers() -> tuple[set[str], set[str], set[str], set[Path]]:
    """This run's namespaces, links, cgroups and temp dirs (other runs may share the machine)."""
    mine = str(os.getpid())
    return (
        {n for n in _netns.namespaces() if mine in n},
        {link for link in _netns.links() if mine in link},
        {str(p) for parent in _cgroups.own_parents() for p in parent.glob(f"wrtest-{mine}*")},
        set(Path("/tmp").glob(f"wrtest-systemd-{mine}-*")),
    )


@pytest.mark.systemd
def test_boot_deploy_poweroff_leaves_this_machine_untouched(tmp_path: Path) -> None:
    # An old file in /tmp: what systemd-tmpfiles would wipe on boot or age out later.
    canary = Path(f"/tmp/wrtest-canary-{os.getpid()}")
    canary.write_text("must survive")
    month_ago = time.time() - 30 * 86400
    os.utime(canary, (month_ago, month_ago))
    units_before = _dir_listing(Path("/etc/systemd/system"))
    dev_before = sorted(os.listdir("/dev"))
    left_before = _leftovers()
    try:
        with fake_systemd_hosts(("iso-a",)) as (host,):
            _deploy_hello(host)
            url = f"http://{host.address}:{HELLO_PORT}/index.html"
            wait_until(lambda: _get(url), 10.0, f"{UNIT} to answer")
            in_host = [
                int(p) for p in _netns.run(["ip", "netns", "pids", str(host.namespace)]).split()
            ]
            assert len(in_host) >= 5, "systemd, journald, dbus, sshd and the hello service"
            started = time.monotonic()
            # A clean poweroff: the kernel ends a PID namespace whose init powers off with
            # SIGINT (a teardown kill would be SIGTERM/SIGKILL).
            assert host.poweroff() == -signal.SIGINT
            assert time.monotonic() - started < 10
            assert not host.boot.running
        assert canary.read_text() == "must survive"
        assert canary.stat().st_mtime == pytest.approx(month_ago)
        assert _dir_listing(Path("/etc/systemd/system")) == units_before
        assert sorted(os.listdir("/dev")) == dev_before
        assert _leftovers() == left_before
        for pid in in_host:
            assert _stale.process_gone(pid), f"pid {pid} outlived its host"
    finally:
        canary.unlink(missing_ok=True)


CRASHING_RUN = """
import json, time
from pathlib import Path
from tests.infra.systemd_hosts import fake_systemd_hosts

def test_then_get_killed():
    with fake_systemd_hosts(("crash-a",)) as (host,):
        state = {
            "namespace": host.namespace,
            "dir": str(host.root_dir.parent),
            "cgroups": [str(c) for c in host.cgroups],
            "pids": [host.boot.pid, host.systemd_pid()],
        }
        staged = Path(__file__).with_name("state.json.tmp")  # renamed: never read half-written
        staged.write_text(json.dumps(state))
        staged.rename(staged.with_name("state.json"))
        time.sleep(300)
"""


@pytest.mark.systemd
def test_a_crashed_runs_systemd_host_is_removed_by_the_next(tmp_path: Path) -> None:
    (tmp_path / "test_crash.py").write_text(CRASHING_RUN)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull]
    inner = ManagedProcess(
        [*argv, "--rootdir", str(tmp_path), str(tmp_path / "test_crash.py")],
        tmp_path / "inner.log",
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        cwd=tmp_path,
        stop_signal=signal.SIGKILL,  # a crash: no teardown runs
    )
    with inner:
        state_file = tmp_path / "state.json"
        wait_until(state_file.exists, 60, f"the inner run to boot its host:\n{inner.log_tail()}")
        state = json.loads(state_file.read_text())
    assert Path(state["dir"]).exists() and all(map(_stale.pid_alive, state["pids"]))

    remove_stale()
    _stale.remove_stale_dirs("wrtest-systemd-")

    assert state["namespace"] not in _netns.namespaces()
    assert not Path(state["dir"]).exists()
    assert not any(Path(c).exists() for c in state["cgroups"])
    for pid in state["pids"]:
        assert _stale.process_gone(pid), f"pid {pid} of the crashed run's host still runs"


def test_init_refuses_to_boot_on_this_machines_own_dirs() -> None:
    """The guard before `exec systemd`, run as-is here (nothing private mounted): it stops."""
    checks = "\n".join(["set -eu", *_systemd_boot._isolation_checks(), "echo would-boot"])
    done = subprocess.run(["sh", "-c", checks], capture_output=True, text=True, timeout=10)
    assert done.returncode == _systemd_boot.NOT_ISOLATED
    assert "is not private: not booting" in done.stderr
    assert "would-boot" not in done.stdout

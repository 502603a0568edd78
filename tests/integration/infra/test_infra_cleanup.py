"""The fixtures leave nothing behind, and clear up what a crashed earlier run left."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra import _netns, _stale
from tests.infra.process import ManagedProcess, wait_until
from tests.infra.ssh_hosts import fake_ssh_hosts


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _wrtest_state() -> tuple[set[str], set[str], set[str]]:
    """This process's namespaces, links and fixture dirs: other workers and other test runs
    on the machine make and remove their own meanwhile."""
    pid = os.getpid()
    tmp = {p.name for p in Path("/tmp").glob(f"wrtest-ssh-{pid}-*")}
    namespaces = {n for n in _netns.namespaces() if re.fullmatch(rf"wrtest-{pid}[a-z]-\d+", n)}
    links = {n for n in _netns.links() if re.fullmatch(rf"wr[bv]{pid}[a-z]\w*", n)}
    return namespaces, links, tmp


@pytest.mark.ssh
def test_namespaced_hosts_are_removed_on_exit() -> None:
    before = _wrtest_state()
    with fake_ssh_hosts(("solo-a", "solo-b"), mode="netns") as hosts:
        assert {h.mode for h in hosts} == {"netns"}
        assert all(h.namespace in _netns.namespaces() for h in hosts)
        pid = hosts[0].sshd.pid
        with hosts[0].connect() as conn:
            # A process the "deploy" leaves running must die with its host.
            conn.run("nohup sleep 300 > /dev/null 2>&1 &", hide=True)
        in_ns = _netns.run(["ip", "netns", "pids", str(hosts[0].namespace)]).split()
        assert len(in_ns) >= 2, "sshd and the left-over sleep"
    assert _wrtest_state() == before
    for left in (pid, *map(int, in_ns)):
        assert _stale.process_gone(left), f"pid {left} outlived its host"


@pytest.mark.ssh
def test_loopback_fallback_hosts(tmp_path: Path) -> None:
    with fake_ssh_hosts(("lo-a", "lo-b"), mode="loopback") as hosts:
        a, b = hosts
        assert (a.address, b.address) == ("127.0.0.2", "127.0.0.3")
        assert a.namespace is None and a.mode == "loopback"
        for host in hosts:
            assert host.remote_opt == str(host.opt_dir)
            with host.connect() as conn:
                conn.sudo(f"sh -c 'echo {host.name} > {host.remote_opt}/marker'", hide=True)
            assert (host.opt_dir / "marker").read_text() == f"{host.name}\n"
        session = a.root_dir.parent
    assert not session.exists()


@pytest.mark.ssh
def test_stale_namespaces_and_links_of_dead_runs_are_removed() -> None:
    dead = _dead_pid()
    mine = f"wrtest-{os.getpid()}z-0"
    _netns.run(["ip", "netns", "add", f"wrtest-{dead}a-0"])
    _netns.run(["ip", "link", "add", f"wrb{dead}a", "type", "bridge"])
    _netns.run(["ip", "netns", "add", mine])
    try:
        removed = _netns.remove_stale()
        assert {f"wrtest-{dead}a-0", f"wrb{dead}a"} <= set(removed)
        assert f"wrtest-{dead}a-0" not in _netns.namespaces()
        assert f"wrb{dead}a" not in _netns.links()
        assert mine in _netns.namespaces(), "a live session's namespace was removed"
    finally:
        _netns.delete_namespace(mine)
        _netns.delete_namespace(f"wrtest-{dead}a-0")
        _netns.delete_link(f"wrb{dead}a")


def test_stale_dirs_of_dead_runs_are_removed_with_their_processes(tmp_path: Path) -> None:
    stale, live = tmp_path / f"wrtest-x-{_dead_pid()}-1", tmp_path / f"wrtest-x-{os.getpid()}-1"
    sleepers = []
    for base in (stale, live):
        sleeper = ManagedProcess(["sleep", "300"], base / "sleep.log").start()
        sleepers.append(sleeper)
    try:
        # A record whose PID now belongs to another process (other start time) is left alone.
        (stale / "reused.log.wrproc").write_text(f"{sleepers[1].pid} 1\n")
        assert _stale.remove_stale_dirs("wrtest-x-", tmp_path) == [stale]
        assert not stale.exists() and live.exists()
        wait_until(lambda: _stale.process_gone(sleepers[0].pid), 5, "the stale sleeper to die")
        assert sleepers[1].running
    finally:
        for sleeper in sleepers:
            sleeper.stop()


def test_bad_ssh_mode_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRTEST_SSH_MODE", "bogus")
    expected = "WRTEST_SSH_MODE='bogus': expected 'netns' or 'loopback'"
    with pytest.raises(ValueError, match=expected), fake_ssh_hosts(("x",)):
        pass


CRASHING_RUN = """
import json, time
from pathlib import Path

def test_then_get_killed(ssh_hosts, postgres):
    state = {
        "namespaces": [h.namespace for h in ssh_hosts],
        "dirs": [str(ssh_hosts[0].root_dir.parent), str(postgres.data_dir.parent)],
        "pids": [h.sshd.pid for h in ssh_hosts]
        + [int((postgres.data_dir / "postmaster.pid").read_text().split()[0])],
    }
    # Published whole (write, then rename): the outer test reads it as soon as it exists.
    part = Path(__file__).with_name("state.json.part")
    part.write_text(json.dumps(state))
    part.replace(part.with_name("state.json"))
    time.sleep(300)
"""


@pytest.mark.ssh
@pytest.mark.postgres
def test_a_crashed_run_is_cleaned_up_by_the_next(tmp_path: Path) -> None:
    (tmp_path / "test_crash.py").write_text(CRASHING_RUN)
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull]
    argv += [
        "-p",
        "tests.infra.ssh_hosts",
        "-p",
        "tests.infra.postgres",
        "--rootdir",
        str(tmp_path),
    ]
    inner = ManagedProcess(
        [*argv, str(tmp_path / "test_crash.py")],
        tmp_path / "inner.log",
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[3]), "WRTEST_SSH_MODE": "netns"},
        cwd=tmp_path,
        stop_signal=signal.SIGKILL,  # a crash: no fixture teardown runs
    )
    with inner:
        state_file = tmp_path / "state.json"
        wait_until(
            state_file.exists, 60, f"the inner run to start its fixtures:\n{inner.log_tail()}"
        )
        state = json.loads(state_file.read_text())
    assert all(Path(d).exists() for d in state["dirs"]), "the crash left nothing to clean"

    _netns.remove_stale()
    _stale.remove_stale_dirs("wrtest-ssh-")
    _stale.remove_stale_dirs("wrtest-pg-")

    assert not set(state["namespaces"]) & set(_netns.namespaces())
    assert not any(Path(d).exists() for d in state["dirs"])
    wait_until(
        lambda: all(_stale.process_gone(pid) for pid in state["pids"]),
        5,
        "sshd and postgres to die",
    )

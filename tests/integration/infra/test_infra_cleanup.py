"""The fixtures leave nothing behind, and clear up what a crashed earlier run left."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra import _netns
from tests.infra.postgres import remove_stale_clusters
from tests.infra.ssh_hosts import fake_ssh_hosts


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _wrtest_state() -> tuple[set[str], set[str], set[str]]:
    tmp = {p.name for p in Path("/tmp").glob(f"wrtest-ssh-{os.getpid()}-*")}
    return set(_netns.namespaces()), set(_netns.links()), tmp


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
        assert _netns.process_gone(left), f"pid {left} outlived its host"


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


def test_stale_postgres_dirs_of_dead_runs_are_removed(tmp_path: Path) -> None:
    stale, live = tmp_path / "wrtest-pg-old", tmp_path / "wrtest-pg-live"
    for base, owner in ((stale, _dead_pid()), (live, os.getpid())):
        (base / "data").mkdir(parents=True)
        (base / "owner.pid").write_text(str(owner))
    remove_stale_clusters(tmp_path)
    assert not stale.exists()
    assert live.exists()


def test_bad_ssh_mode_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRTEST_SSH_MODE", "bogus")
    expected = "WRTEST_SSH_MODE='bogus': expected 'netns' or 'loopback'"
    with pytest.raises(ValueError, match=expected), fake_ssh_hosts(("x",)):
        pass

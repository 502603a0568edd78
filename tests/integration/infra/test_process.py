"""The process helpers against real child processes on loopback."""

from __future__ import annotations

import os
import signal
import socket
import sys
from pathlib import Path

import pytest

from tests.infra import process
from tests.infra.process import (
    ManagedProcess,
    ProcessNotReady,
    cache_dir,
    free_port,
    port_is_open,
    wait_for_port,
    wait_until,
)


def test_free_port_can_be_bound() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
    assert 1024 <= port <= 65535


def test_free_ports_stay_out_of_the_ephemeral_range_and_do_not_repeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(port < low for port in ports)
    # Two workers of one run draw from disjoint slices.
    slices = []
    for worker in ("gw0", "gw1"):
        monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
        monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
        monkeypatch.setattr(process, "_candidates", None)
        slices.append({free_port() for _ in range(100)})
    assert not slices[0] & slices[1]
    assert max(slices[0]) < min(slices[1])


def test_wait_until_returns_the_truthy_value() -> None:
    calls = iter([None, 0, "", "ready"])
    assert wait_until(lambda: next(calls), 5, "the fourth call") == "ready"


def test_wait_until_names_what_it_waited_for_and_the_last_error() -> None:
    def failing() -> bool:
        raise ConnectionRefusedError("nope")

    with pytest.raises(TimeoutError, match=r"waiting for the widget .*ConnectionRefusedError"):
        wait_until(failing, 0.1, "the widget")


def test_http_server_ready_by_port_and_url_then_stopped(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)]
    server = ManagedProcess(argv, tmp_path / "http.log", cwd=tmp_path, name="http.server")
    with server:
        server.wait_ready(port, deadline_s=10)
        server.wait_ready(f"http://127.0.0.1:{port}/", deadline_s=10)
        wait_for_port("127.0.0.1", port, 1)
        assert server.running
    assert not server.running
    assert server.returncode == -signal.SIGTERM
    assert not port_is_open("127.0.0.1", port)


def test_env_and_cwd_reach_the_child(tmp_path: Path) -> None:
    code = "import os; print(os.environ['WR_TEST_VALUE'], os.getcwd())"
    child = ManagedProcess(
        [sys.executable, "-c", code], tmp_path / "c.log", env={"WR_TEST_VALUE": "x42"}, cwd=tmp_path
    )
    child.start()
    wait_until(lambda: child.returncode is not None, 10, "the child to exit")
    assert child.log_tail() == f"x42 {tmp_path}"
    assert child.stop() == 0


def test_exit_before_ready_fails_at_once_with_the_log(tmp_path: Path) -> None:
    code = "import sys; print('bad config: port missing', file=sys.stderr); sys.exit(3)"
    child = ManagedProcess([sys.executable, "-c", code], tmp_path / "bad.log", name="badsvc")
    child.start()
    with pytest.raises(
        ProcessNotReady, match=r"(?s)badsvc .*exited with 3.*bad config: port missing"
    ):
        child.wait_ready(free_port(), deadline_s=30)
    child.stop()


def test_readiness_timeout_includes_the_log_tail(tmp_path: Path) -> None:
    code = "import time; print('starting up', flush=True); time.sleep(60)"
    child = ManagedProcess([sys.executable, "-c", code], tmp_path / "slow.log", name="slowsvc")
    with child:
        wait_until(lambda: "starting up" in child.log_tail(), 10, "the child to log")
        with pytest.raises(ProcessNotReady, match=r"(?s)timed out after 0.2s.*starting up"):
            child.wait_ready(free_port(), deadline_s=0.2)


def test_stop_kills_what_ignores_sigterm_and_its_children(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "print('ignoring', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = ManagedProcess([sys.executable, "-c", code], tmp_path / "stubborn.log").start()
    wait_until(lambda: "ignoring" in child.log_tail(), 10, "the child to ignore SIGTERM")
    grandchild = int(pid_file.read_text())
    assert child.stop(grace_s=0.3) == -signal.SIGKILL

    def grandchild_gone() -> bool:
        try:
            os.kill(grandchild, 0)
        except ProcessLookupError:
            return True
        # A killed child of a dead parent is a zombie until init reaps it: that counts as gone.
        return Path(f"/proc/{grandchild}/stat").read_text().split(")")[1].split()[0] == "Z"

    wait_until(grandchild_gone, 5, f"grandchild {grandchild} to be killed")


def test_cache_dir_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wruntime_cache: Path
) -> None:
    assert wruntime_cache.is_dir()
    monkeypatch.setenv("WRUNTIME_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    assert (tmp_path / "c").is_dir()


def test_a_malformed_readiness_url_fails_at_once(tmp_path: Path) -> None:
    code = "import time; time.sleep(60)"
    child = ManagedProcess([sys.executable, "-c", code], tmp_path / "x.log").start()
    try:
        with pytest.raises(ValueError, match=r"readiness url 'https://x/': expected http://"):
            child.wait_ready("https://x/", deadline_s=30)
    finally:
        child.stop()

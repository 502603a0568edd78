"""LocalTransport's side of the Transport protocol: env, sudo, get, streaming, timeouts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wrctl.deploy.transport import CommandTimeout, LocalTransport


def test_run_with_env_and_sudo() -> None:
    t = LocalTransport()
    assert t.run('printf %s "$WR_X"', env={"WR_X": "a b"}).stdout == "a b"
    if os.geteuid() == 0:  # as root, sudo=True runs the command directly
        assert t.run("id -u", sudo=True).stdout.strip() == "0"
        assert t.run('printf %s "$WR_X"', env={"WR_X": "c"}, sudo=True).stdout == "c"


def test_get_and_stream(tmp_path: Path) -> None:
    t = LocalTransport()
    source = tmp_path / "remote.txt"
    source.write_text("payload")
    t.get(str(source), tmp_path / "local.txt")
    assert (tmp_path / "local.txt").read_text() == "payload"
    assert not (tmp_path / "local.txt.part").exists()
    chunks: list[str] = []
    assert t.stream("echo out; echo err >&2; exit 2", chunks.append) == 2
    assert sorted("".join(chunks).split()) == ["err", "out"]


def test_timeouts_are_wrctl_errors() -> None:
    t = LocalTransport()
    with pytest.raises(CommandTimeout, match=r"`sleep 5` did not finish within 0\.3s"):
        t.run("sleep 5", timeout=0.3)
    with pytest.raises(CommandTimeout):
        t.stream("sleep 5", lambda _: None, timeout=0.3)


def test_a_killed_command_without_status_is_reported_as_a_timeout() -> None:
    # invoke sometimes returns the command its timer killed (exit -1) instead of raising.
    import time
    from types import SimpleNamespace

    from wrctl.deploy.transport import invoke_run

    def killed(line: str, **kwargs: object) -> SimpleNamespace:
        time.sleep(0.05)
        return SimpleNamespace(exited=-1, stdout="", stderr="")

    with pytest.raises(CommandTimeout, match=r"`sleep 9` did not finish within 0\.05s"):
        invoke_run(killed, "host-a", "sleep 9", "sleep 9", 0.05)
    # A real exit -1 status that came before the timeout is just a status.
    fast = invoke_run(lambda line, **kw: SimpleNamespace(exited=-1), "host-a", "x", "x", 30.0)
    assert fast.exited == -1

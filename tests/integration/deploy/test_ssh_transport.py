"""SshTransport against real sshd fake hosts: commands, env, sudo, SFTP, streaming, jump host."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.infra.ssh_hosts import SshHost, keygen
from tests.integration.deploy.support import transport_for
from wrctl.deploy.ssh import SshError
from wrctl.deploy.transport import CommandTimeout, HostCommandError


def test_run_as_the_deploy_user_with_env(ssh_hosts: list[SshHost]) -> None:
    host = ssh_hosts[0]
    t = transport_for(host)
    try:
        assert t.run("whoami").stdout.strip() == "deploy"
        value = 'it\'s a "quoted" $HOME value'
        got = t.run('printf %s "$GREETING"; [ -t 0 ] && echo tty || true', env={"GREETING": value})
        assert got.stdout == value
        failed = t.run("echo oops >&2; exit 3", check=False)
        assert (failed.exit_code, failed.stderr.strip()) == (3, "oops")
        with pytest.raises(HostCommandError, match="exited 3"):
            t.run("exit 3")
    finally:
        t.close()


def test_sudo_runs_as_root_and_keeps_env(ssh_hosts: list[SshHost]) -> None:
    t = transport_for(ssh_hosts[0])
    try:
        got = t.run('echo "$(id -un) $WR_X"', sudo=True, env={"WR_X": "a b"})
        assert got.stdout.strip() == "root a b"
    finally:
        t.close()


def test_put_with_progress_then_get(ssh_hosts: list[SshHost], tmp_path: Path) -> None:
    host = ssh_hosts[0]
    local = tmp_path / "bundle.tar.gz"
    local.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    seen: list[tuple[int, int]] = []
    t = transport_for(host)
    try:
        remote_dir = t.run("echo $HOME").stdout.strip() + f"/put-test-{os.getpid()}"
        t.run(f"rm -rf {remote_dir} && mkdir -p {remote_dir}")
        t.put(local, f"{remote_dir}/b.tar.gz", lambda done, total: seen.append((done, total)))
        listing = t.run(f"ls -A {remote_dir}").stdout.split()
        assert listing == ["b.tar.gz"]  # the .part file was renamed, not left behind
        remote_sum = t.run(f"sha256sum {remote_dir}/b.tar.gz").stdout.split()[0]
        assert remote_sum == hashlib.sha256(local.read_bytes()).hexdigest()
        size = local.stat().st_size
        assert len(seen) > 1 and seen[-1] == (size, size)
        assert [d for d, _ in seen] == sorted(d for d, _ in seen)
        back = tmp_path / "back.tar.gz"
        t.get(f"{remote_dir}/b.tar.gz", back)
        assert back.read_bytes() == local.read_bytes()
        with pytest.raises(SshError, match="missing"):
            t.put(local, f"{remote_dir}/missing/x.tar.gz")
    finally:
        t.run(f"rm -rf $HOME/put-test-{os.getpid()}", check=False)
        t.close()


def test_stream_and_timeout(ssh_hosts: list[SshHost]) -> None:
    t = transport_for(ssh_hosts[0])
    chunks: list[str] = []
    try:
        code = t.stream("printf 'one\\ntwo\\n'; echo three >&2; exit 4", chunks.append)
        assert code == 4
        assert sorted("".join(chunks).split()) == ["one", "three", "two"]
        with pytest.raises(CommandTimeout, match=r"within 0\.5s"):
            t.run("sleep 10", timeout=0.5)
        assert t.run("echo still-usable").stdout.strip() == "still-usable"
    finally:
        t.close()


def test_jump_host_reaches_the_second_host_through_the_first(ssh_hosts: list[SshHost]) -> None:
    a, b = ssh_hosts
    jump = f"{a.user}@{a.address}:{a.port}"
    t = transport_for(b, jump_host=jump)
    try:
        assert "via" in t.name
        assert t.run("whoami").stdout.strip() == "deploy"
        if b.mode == "netns":
            assert t.run("hostname").stdout.strip() == "node-b"
            # b saw the connection come from a's address, not from this machine (gateway)
            assert t.run("echo $SSH_CLIENT").stdout.split()[0] == a.address
    finally:
        t.close()


def test_missing_or_wrong_key_is_clear(ssh_hosts: list[SshHost], tmp_path: Path) -> None:
    a = ssh_hosts[0]
    with pytest.raises(SshError, match=r"ssh_key .* does not exist"):
        transport_for(a, key_path=str(tmp_path / "nope"))
    other = tmp_path / "other_key"
    keygen(other, "not-authorized")
    with pytest.raises(SshError, match="authentication as 'deploy' failed"):
        transport_for(a, key_path=str(other))

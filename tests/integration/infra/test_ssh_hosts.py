"""The fake SSH hosts: key-checked fabric connections, sudo, and per-host identity and /opt."""

from __future__ import annotations

import io
from pathlib import Path

import paramiko
import pytest

from tests.infra.ssh_hosts import SshHost


def test_run_a_command_with_the_host_key_checked(ssh_hosts: list[SshHost]) -> None:
    host = ssh_hosts[0]
    with host.connect() as conn:
        result = conn.run("id -un; echo $HOME", hide=True)
        assert result.stdout.split() == ["deploy", "/home/deploy"]
        server_key = conn.client.get_transport().get_remote_server_key()
    assert f"SHA256:{_b64_sha256(server_key)}" == host.host_key_fingerprint


def _b64_sha256(key: paramiko.PKey) -> str:
    import base64
    import hashlib

    return base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


def test_unknown_host_key_is_refused(ssh_hosts: list[SshHost], tmp_path: Path) -> None:
    host = ssh_hosts[0]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(paramiko.SSHException, match="not found in known_hosts"):
        host.connect(known_hosts=empty).run("true", hide=True)


def test_another_hosts_key_is_refused(ssh_hosts: list[SshHost], tmp_path: Path) -> None:
    """node-b's key filed under node-a's address: a changed key must not be accepted."""
    a, b = ssh_hosts[0], ssh_hosts[1]
    lines = b.known_hosts_path.read_text().splitlines()
    b_key = next(line for line in lines if line.startswith((b.address, f"[{b.address}]")))
    a_target = a.address if a.port == 22 else f"[{a.address}]:{a.port}"
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"{a_target} {b_key.split(' ', 1)[1]}\n")
    with pytest.raises(paramiko.BadHostKeyException):
        a.connect(known_hosts=wrong).run("true", hide=True)


def test_password_login_is_not_offered(ssh_hosts: list[SshHost]) -> None:
    host = ssh_hosts[0]
    transport = paramiko.Transport((host.address, host.port))
    try:
        transport.start_client(timeout=10)
        with pytest.raises(paramiko.BadAuthenticationType) as info:
            transport.auth_password(host.user, "wrong")
        assert info.value.allowed_types == ["publickey"]
    finally:
        transport.close()


def test_passwordless_sudo(ssh_hosts: list[SshHost]) -> None:
    with ssh_hosts[1].connect() as conn:
        assert conn.sudo("id -u", hide=True).stdout.strip() == "0"


def test_hosts_are_distinct(ssh_hosts: list[SshHost]) -> None:
    assert len(ssh_hosts) >= 2
    a, b = ssh_hosts[0], ssh_hosts[1]
    assert a.address != b.address
    assert a.host_key_fingerprint != b.host_key_fingerprint
    assert a.opt_dir != b.opt_dir
    seen = {}
    for host in (a, b):
        with host.connect() as conn:
            seen[host.name] = conn.run("hostname", hide=True).stdout.strip()
            # Written with sudo, as a deploy would: it must land in this host's own dir.
            conn.sudo(f"mkdir -p {host.remote_opt}/wruntime", hide=True)
            conn.sudo(f"sh -c 'echo {host.name} > {host.remote_opt}/wruntime/marker'", hide=True)
            conn.put(io.BytesIO(b"uploaded"), f"/tmp/wrtest-upload-{host.name}")
            conn.run(f"rm /tmp/wrtest-upload-{host.name}", hide=True)
    for host in (a, b):
        assert (host.opt_dir / "wruntime" / "marker").read_text() == f"{host.name}\n"
    if a.mode == "netns":
        assert seen == {a.name: a.name, b.name: b.name}
        assert a.remote_opt == b.remote_opt == "/opt"
        assert not Path("/opt/wruntime/marker").exists()


def test_namespaced_hosts_reach_each_other_but_nothing_outside(ssh_hosts: list[SshHost]) -> None:
    a, b = ssh_hosts[0], ssh_hosts[1]
    if a.mode != "netns":
        pytest.skip("hosts share the machine's network in loopback mode")
    with a.connect() as conn:
        routes = conn.run("ip -4 route", hide=True).stdout
        assert "default" not in routes
        assert conn.run("ip -4 -o addr show dev eth0", hide=True).stdout.count("inet ") == 1
        reach = f"python3 -c \"import socket; socket.create_connection(('{b.address}', 22), 5)\""
        assert conn.run(reach, hide=True, warn=True).ok

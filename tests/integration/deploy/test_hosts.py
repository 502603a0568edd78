"""open_host for remote resources: settings from cluster.toml, the host key opt-in, and the
format each `format` value gives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infra.ssh_hosts import SshHost
from wrctl.deploy.docker import DockerFormat
from wrctl.deploy.hostkeys import UnknownHostKey
from wrctl.deploy.hosts import ConnectOptions, open_host
from wrctl.deploy.ssh import SshTransport
from wrctl.deploy.supervisor import SupervisorFormat
from wrctl.deploy.systemd import SystemdFormat


def _attributes(host: SshHost, fmt: str) -> dict[str, str]:
    return {
        "host": host.address,
        "format": fmt,
        "user": host.user,
        "workdir": "/opt/wruntime",
        "ssh_port": str(host.port),
        "python": "/usr/bin/python3",
    }


@pytest.mark.parametrize(
    ("fmt", "kind"),
    [("systemd", SystemdFormat), ("docker", DockerFormat), ("supervisor", SupervisorFormat)],
)
def test_open_a_remote_host(ssh_hosts: list[SshHost], fmt: str, kind: type) -> None:
    host = ssh_hosts[1]
    connect = ConnectOptions(ssh_key=str(host.key_path), known_hosts=str(host.known_hosts_path))
    target = open_host(_attributes(host, fmt), "node.b", connect)
    try:
        assert isinstance(target.transport, SshTransport)
        assert isinstance(target.format, kind)
        assert (target.workdir, target.python, target.runtime_bin) == (
            "/opt/wruntime",
            "/usr/bin/python3",
            "",
        )
        assert target.transport.run("whoami").stdout.strip() == "deploy"
    finally:
        target.transport.close()


def test_unknown_host_key_needs_the_opt_in(ssh_hosts: list[SshHost], tmp_path: Path) -> None:
    host = ssh_hosts[0]
    known = tmp_path / "known_hosts"
    refuse = ConnectOptions(ssh_key=str(host.key_path), known_hosts=str(known))
    with pytest.raises(UnknownHostKey, match=re.escape(host.host_key_fingerprint)):
        open_host(_attributes(host, "supervisor"), "node.a", refuse)
    accept = ConnectOptions(str(host.key_path), known_hosts=str(known), accept_new_host_key=True)
    target = open_host(_attributes(host, "supervisor"), "node.a", accept)
    target.transport.close()
    assert host.address in known.read_text()

"""open_host for remote targets: connection settings, the host key opt-in, and the format
each `format` value gives."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infra.ssh_hosts import SshHost
from wrctl.config.targets import HostTarget, Reach
from wrctl.deploy.docker import DockerFormat
from wrctl.deploy.hostkeys import UnknownHostKey
from wrctl.deploy.hosts import open_host
from wrctl.deploy.ssh import SshTransport
from wrctl.deploy.supervisor import SupervisorFormat
from wrctl.deploy.systemd import SystemdFormat


def _place(host: SshHost, fmt: str, known_hosts: Path, accept: bool = False) -> HostTarget:
    reach = Reach(
        user=host.user,
        ssh_port=host.port,
        ssh_key=str(host.key_path),
        known_hosts=str(known_hosts),
        accept_new_host_key=accept,
    )
    return HostTarget(
        "node.b", "node-b", host.address, fmt, "/opt/wruntime", "/usr/bin/python3", reach=reach
    )


@pytest.mark.parametrize(
    ("fmt", "kind"),
    [("systemd", SystemdFormat), ("docker", DockerFormat), ("supervisor", SupervisorFormat)],
)
def test_open_a_remote_host(ssh_hosts: list[SshHost], fmt: str, kind: type) -> None:
    host = ssh_hosts[1]
    target = open_host(_place(host, fmt, host.known_hosts_path))
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
    with pytest.raises(UnknownHostKey, match=re.escape(host.host_key_fingerprint)):
        open_host(_place(host, "supervisor", known))
    target = open_host(_place(host, "supervisor", known, accept=True))
    target.transport.close()
    assert host.address in known.read_text()

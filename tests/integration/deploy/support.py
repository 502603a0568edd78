"""Helpers for deploy tests: SSH options and transports that reach the fake hosts."""

from __future__ import annotations

from typing import Any

import paramiko
import pytest

from tests.infra.ssh_hosts import HostAccess
from wrctl.deploy.ssh import SshOptions, SshTransport


def options_for(host: HostAccess, **changes: object) -> SshOptions:
    """SshOptions that reach `host` like a cluster.toml would name it (its key, its
    known_hosts); keyword arguments override fields."""
    fields: dict[str, object] = {
        "host": host.address,
        "user": host.user,
        "port": host.port,
        "key_path": str(host.key_path),
        "known_hosts": str(host.known_hosts_path),
        "connect_timeout_s": 5.0,
    }
    fields.update(changes)
    return SshOptions(**fields)  # type: ignore[arg-type]


def transport_for(host: HostAccess, **changes: object) -> SshTransport:
    return SshTransport(options_for(host, **changes))


def record_ssh_commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every command line paramiko sends to any host from now on (what the host's `ps` and
    sudo log show of it), recorded at the lowest layer, below wrctl's transport and fabric."""
    commands: list[str] = []
    real = paramiko.Channel.exec_command

    def spy(channel: paramiko.Channel, command: Any) -> None:
        commands.append(command.decode() if isinstance(command, bytes) else str(command))
        real(channel, command)

    monkeypatch.setattr(paramiko.Channel, "exec_command", spy)
    return commands

"""Open the host a target lives on from its resource attributes (host, format, user, port,
workdir, python) plus how to connect (key, jump host, sudo, known_hosts): this machine, or a
remote host over SSH."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from wrctl.config.model import ClusterConfig, HostSettings
from wrctl.deploy.docker import DockerFormat
from wrctl.deploy.formats import FORMATS, ServiceFormat
from wrctl.deploy.hostkeys import DEFAULT_KNOWN_HOSTS
from wrctl.deploy.rollout import TargetHost
from wrctl.deploy.ssh import CONNECT_TIMEOUT_S, SshOptions, SshTransport
from wrctl.deploy.supervisor import SupervisorFormat
from wrctl.deploy.systemd import SystemdFormat
from wrctl.deploy.transport import LocalTransport, Transport
from wrctl.errors import WrctlError


@dataclass(frozen=True)
class ConnectOptions:
    """How to reach remote hosts beyond the resource attributes: from cluster.toml
    (ssh_key, jump_host, sudo; per host) and the command line (known_hosts, opt-in)."""

    ssh_key: str | None = None
    jump_host: str | None = None
    sudo: bool = False
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    accept_new_host_key: bool = False
    connect_timeout_s: float = CONNECT_TIMEOUT_S


def connect_options(
    config: ClusterConfig,
    address: str,
    *,
    known_hosts: str | None = None,
    accept_new_host_key: bool = False,
) -> ConnectOptions:
    """ConnectOptions for resource `address` (`manager` or `node.NAME`): its [manager] or
    [[node]] settings over [defaults]."""
    section: HostSettings = config.manager
    if address != "manager":
        name = address.removeprefix("node.")
        nodes = [n for n in config.node if n.name == name]
        if not nodes:
            raise WrctlError(f"{address}: no [[node]] named {name!r} in {config.source}")
        section = nodes[0]

    def pick(field: str) -> object:
        value = getattr(section, field)
        return getattr(config.defaults, field) if value is None else value

    ssh_key, jump_host = pick("ssh_key"), pick("jump_host")
    return ConnectOptions(
        ssh_key=str(ssh_key) if ssh_key else None,
        jump_host=str(jump_host) if jump_host else None,
        sudo=bool(pick("sudo")),
        known_hosts=known_hosts or DEFAULT_KNOWN_HOSTS,
        accept_new_host_key=accept_new_host_key,
    )


def open_host(
    attributes: dict[str, str], address: str, connect: ConnectOptions | None = None
) -> TargetHost:
    """The transport and format for a resource's host; the caller closes the transport."""
    host = attributes["host"]
    fmt = attributes.get("format") or "supervisor"
    if fmt not in FORMATS:
        raise WrctlError(f"{address}: format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if host == "local":
        return _open_local(attributes, address, fmt)
    return _open_remote(attributes, address, fmt, connect or ConnectOptions())


def _open_local(attributes: dict[str, str], address: str, fmt: str) -> TargetHost:
    if fmt != "supervisor":
        raise WrctlError(
            f'{address}: format {fmt!r} on host "local" is not supported; '
            'use format = "supervisor" for local targets'
        )
    transport = LocalTransport()
    runtime_bin = str(Path(sys.executable).parent)
    workdir = attributes["workdir"]
    return TargetHost(
        transport, workdir, SupervisorFormat(transport, workdir, runtime_bin), runtime_bin
    )


def _open_remote(
    attributes: dict[str, str], address: str, fmt: str, connect: ConnectOptions
) -> TargetHost:
    workdir = attributes.get("workdir", "")
    if not workdir.startswith("/"):
        raise WrctlError(f"{address}: workdir {workdir!r} on a remote host must be absolute")
    port = attributes.get("ssh_port") or "22"
    if not port.isdigit():
        raise WrctlError(f"{address}: ssh_port {port!r}: expected a port number")
    options = SshOptions(
        host=attributes["host"],
        user=attributes.get("user") or "deploy",
        port=int(port),
        key_path=attributes.get("ssh_key") or connect.ssh_key,
        jump_host=attributes.get("jump_host") or connect.jump_host,
        known_hosts=connect.known_hosts,
        accept_new_host_key=connect.accept_new_host_key,
        connect_timeout_s=connect.connect_timeout_s,
    )
    python = attributes.get("python") or "python3"
    transport = SshTransport(options)
    service = _remote_format(fmt, transport, workdir, python, attributes)
    return TargetHost(transport, workdir, service, "", python, connect.sudo)


def _remote_format(
    fmt: str, transport: Transport, workdir: str, python: str, attributes: dict[str, str]
) -> ServiceFormat:
    if fmt == "systemd":
        return SystemdFormat(transport, workdir)
    if fmt == "docker":
        return DockerFormat(transport, workdir, attributes.get("docker_base_image"))
    return SupervisorFormat.remote(transport, workdir, python)


@dataclass(frozen=True)
class HostAccess:
    """What the command line adds about reaching hosts: which known_hosts file, and whether
    an unknown host's key may be trusted on first use."""

    known_hosts: str | None = None
    accept_new_host_key: bool = False


def open_target(
    config: ClusterConfig,
    attributes: dict[str, str],
    address: str,
    access: HostAccess = HostAccess(),
) -> TargetHost:
    """open_host with the connection settings of cluster.toml for `address`; a resource that
    is no longer declared (being destroyed) is reached with the [defaults]."""
    try:
        connect = connect_options(
            config,
            address,
            known_hosts=access.known_hosts,
            accept_new_host_key=access.accept_new_host_key,
        )
    except WrctlError:
        d = config.defaults
        connect = ConnectOptions(
            ssh_key=d.ssh_key,
            jump_host=d.jump_host,
            sudo=bool(d.sudo),
            known_hosts=access.known_hosts or DEFAULT_KNOWN_HOSTS,
            accept_new_host_key=access.accept_new_host_key,
        )
    return open_host(attributes, address, connect)

"""Open the host a target lives on: this machine, or a remote host over SSH, with the
service format its target runs under."""

from __future__ import annotations

import sys
from pathlib import Path

from wrctl.config.hostvalues import host_problem
from wrctl.config.targets import HostTarget
from wrctl.deploy.docker import DockerFormat
from wrctl.deploy.formats import FORMATS, ServiceFormat
from wrctl.deploy.rollout import TargetHost
from wrctl.deploy.ssh import CONNECT_TIMEOUT_S, SshOptions, SshTransport
from wrctl.deploy.supervisor import SupervisorFormat
from wrctl.deploy.systemd import SystemdFormat
from wrctl.deploy.transport import LocalTransport, Transport
from wrctl.errors import WrctlError


def open_host(place: HostTarget, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> TargetHost:
    """The transport and format for a target's host; the caller closes the transport."""
    fmt = place.format
    if fmt not in FORMATS:
        raise WrctlError(f"{place.address}: format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if place.is_local:
        return _open_local(place, fmt)
    return _open_remote(place, fmt, connect_timeout_s)


def _open_local(place: HostTarget, fmt: str) -> TargetHost:
    if fmt != "supervisor":
        raise WrctlError(
            f'{place.address}: format {fmt!r} on host "local" is not supported; '
            'use format = "supervisor" for local targets'
        )
    transport = LocalTransport()
    runtime_bin = str(Path(sys.executable).parent)
    workdir = place.workdir
    return TargetHost(
        transport, workdir, SupervisorFormat(transport, workdir, runtime_bin), runtime_bin
    )


def _open_remote(place: HostTarget, fmt: str, connect_timeout_s: float) -> TargetHost:
    # cluster.toml's hosts were checked at load; a recorded one (a target being removed) too
    problem = host_problem(place.host)
    if problem:
        raise WrctlError(f"{place.address}: host {problem}")
    workdir = place.workdir
    if not workdir.startswith("/"):
        raise WrctlError(f"{place.address}: workdir {workdir!r} on a remote host must be absolute")
    reach = place.reach
    options = SshOptions(
        host=place.host,
        user=reach.user,
        port=reach.ssh_port,
        key_path=reach.ssh_key,
        jump_host=reach.jump_host,
        known_hosts=reach.known_hosts,
        accept_new_host_key=reach.accept_new_host_key,
        connect_timeout_s=connect_timeout_s,
    )
    transport = SshTransport(options)
    service = _remote_format(fmt, transport, place)
    return TargetHost(transport, workdir, service, "", place.python, place.sudo)


def _remote_format(fmt: str, transport: Transport, place: HostTarget) -> ServiceFormat:
    if fmt == "systemd":
        return SystemdFormat(transport, place.workdir)
    if fmt == "docker":
        return DockerFormat(transport, place.workdir, place.docker_base_image)
    return SupervisorFormat.remote(transport, place.workdir, place.python)

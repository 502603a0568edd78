"""Open the host a target lives on from its resource attributes (host, workdir, format)."""

from __future__ import annotations

import sys
from pathlib import Path

from wrctl.deploy.rollout import TargetHost
from wrctl.deploy.supervisor import SupervisorFormat
from wrctl.deploy.transport import LocalTransport
from wrctl.errors import WrctlError


def open_host(attributes: dict[str, str], address: str) -> TargetHost:
    """The transport and format for a resource's host; the caller closes the transport."""
    host = attributes["host"]
    fmt = attributes.get("format", "supervisor")
    if host != "local":
        raise WrctlError(
            f'{address}: host {host!r} is remote; this wrctl deploys to host = "local" only '
            "(SSH transport not available yet)"
        )
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

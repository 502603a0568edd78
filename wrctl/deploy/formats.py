"""The service format interface (systemd, docker, supervisor) and what the formats share:
program names, remote log commands and reading a release's manifest on the host."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from wrctl.deploy.transport import Sink, Transport, quote
from wrctl.errors import WrctlError

FORMATS = ("systemd", "docker", "supervisor")


@dataclass(frozen=True)
class RemoteCommand:
    """A command to run on the host, and whether it needs root."""

    command: str
    sudo: bool = False


class ServiceFormat(Protocol):
    """How a host runs a target's programs. `restart` makes the release `current` points at
    live; `remove` works after `current` is gone."""

    name: str
    install_as_root: bool  # install.sh must run as root (it creates users, chowns)

    def preflight(self) -> list[str]:
        """One line per missing piece of the service manager; empty when all is there."""
        ...

    def ensure_running(self) -> None: ...

    def restart(self, target: str) -> None: ...

    def stop(self, target: str) -> None: ...

    def remove(self, target: str) -> None: ...

    def forget_releases(self, target: str, releases: list[str]) -> None:
        """Drop what the format keeps per release once those releases are pruned (never the
        current one); nothing for formats that keep nothing."""
        ...

    def shutdown_if_idle(self) -> bool:
        """Stop what the format runs for the whole workdir when no target is left."""
        ...

    def log_tail(self, target: str, lines: int = 50) -> str:
        """The last `lines` log lines of each of the target's programs, with headers."""
        ...

    def logs_command(
        self, target: str, service: str | None, follow: bool, lines: int
    ) -> RemoteCommand:
        """The command `wrctl logs` streams for one program (or all of the target's)."""
        ...


def program_name(target: str, service: str) -> str:
    """`proxy` or `engine-0` on target `node-a` -> `wr-a-proxy`; full names pass through."""
    if service.startswith("wr-"):
        return service
    if target == "manager":
        return "wr-manager"
    return f"wr-{target.removeprefix('node-')}-{service}"


def stream_logs(
    transport: Transport,
    fmt: ServiceFormat,
    target: str,
    sink: Sink,
    *,
    service: str | None = None,
    follow: bool = False,
    lines: int = 100,
    timeout: float | None = None,
) -> int:
    """What `wrctl logs NODE [SERVICE] [--follow] [--lines N]` runs; returns the exit code."""
    if lines < 0:
        raise WrctlError(f"--lines {lines}: expected 0 or more")
    command = fmt.logs_command(target, service, follow, lines)
    return transport.stream(command.command, sink, sudo=command.sudo, timeout=timeout)


def current_release(transport: Transport, workdir: str, target: str) -> str:
    """The resolved release dir that `WORKDIR/TARGET/current` points at."""
    current = f"{workdir}/{target}/current"
    result = transport.run(
        f"readlink -f {quote(current)} && test -d {quote(current)}/", check=False
    )
    if not result.ok or not result.stdout.strip():
        raise WrctlError(f"{transport.name}: {current} does not point at an installed release")
    return result.stdout.strip()


def read_manifest(transport: Transport, release: str) -> dict[str, Any]:
    text = transport.run(f"cat {quote(release + '/manifest.json')}").stdout
    try:
        manifest = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WrctlError(f"{transport.name}: {release}/manifest.json is not JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise WrctlError(f"{transport.name}: {release}/manifest.json is not a JSON object")
    return manifest

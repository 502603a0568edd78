"""How wrctl reaches a host: run a shell command, copy a file. Local and SSH share one API,
so a rollout runs the same steps whether the host is this machine or a remote one."""

from __future__ import annotations

import getpass
import os
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from wrctl.errors import WrctlError
from wrctl.escaping import quote as quote  # re-exported: how every value reaches a shell

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Result:
    command: str
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def short_command(command: str, limit: int = 120) -> str:
    """A command as errors show it: its first line, cut at `limit` characters."""
    lines = command.strip().splitlines() or [""]
    first = lines[0]
    cut = len(first) > limit or len(lines) > 1
    return (first[:limit] + " ...") if cut else first


class HostCommandError(WrctlError):
    """A command on a host exited non-zero."""

    def __init__(self, host: str, result: Result) -> None:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        super().__init__(
            f"{host}: `{short_command(result.command)}` exited {result.exit_code}"
            + ("\n  " + "\n  ".join(detail) if detail else "")
        )
        self.result = result


class CommandTimeout(WrctlError):
    """A command on a host did not finish within its timeout."""

    def __init__(self, host: str, command: str, timeout_s: float) -> None:
        super().__init__(f"{host}: `{short_command(command)}` did not finish within {timeout_s:g}s")


class SudoRefused(WrctlError):
    """sudo on the host wants a password (wrctl never types one) or is not allowed."""

    def __init__(self, host: str, user: str, result: Result) -> None:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:]
        super().__init__(
            f"{host}: sudo is needed but refused for user {user!r} ({'; '.join(detail)}); "
            f"allow it without a password, e.g. `{user} ALL=(ALL) NOPASSWD:ALL` in "
            f"/etc/sudoers.d/{user}"
        )


Sink = Callable[[str], None]


class Transport(Protocol):
    name: str

    def run(
        self,
        command: str,
        *,
        check: bool = True,
        env: dict[str, str] | None = None,
        sudo: bool = False,
        timeout: float | None = None,
    ) -> Result:
        """Run a shell command on the host (as root with sudo=True); never reads stdin."""
        ...

    def put(self, local: Path, remote: str, progress: Progress | None = None) -> None:
        """Copy a local file to a path on the host (parent directory must exist), through
        `remote.part` renamed into place, so a partial copy never has the final name."""
        ...

    def get(self, remote: str, local: Path) -> None:
        """Copy a file from the host to a local path (atomically)."""
        ...

    def stream(
        self, command: str, sink: Sink, *, sudo: bool = False, timeout: float | None = None
    ) -> int:
        """Run a command and hand its output (stdout and stderr) to `sink` as it comes, e.g.
        `journalctl -f`; returns the exit code."""
        ...

    def close(self) -> None: ...


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SUDO_PASSWORD_HINTS = ("a password is required", "a terminal is required", "not in the sudoers")


def shell_command(command: str, env: dict[str, str] | None, sudo: bool) -> str:
    """`command` with `env` set inline and, for sudo, run as root by `sudo -n` (never
    prompts); inline because sshd drops client-sent variables and sudo resets the env."""
    exports = ""
    for key, value in (env or {}).items():
        if not _ENV_NAME.fullmatch(key):
            raise ValueError(f"environment variable name {key!r} is not a valid shell name")
        exports += f"export {key}={quote(value)}; "
    if sudo:
        return f"sudo -n -- sh -c {quote(exports + command)}"
    return f"{exports}{command}" if not exports else f"sh -c {quote(exports + command)}"


def check_sudo(host: str, user: str, result: Result) -> None:
    """Raise SudoRefused when a sudo command failed because sudo itself said no."""
    if not result.ok and any(hint in result.stderr for hint in SUDO_PASSWORD_HINTS):
        raise SudoRefused(host, user, result)


def invoke_run(
    runner: Callable[..., Any],
    host: str,
    command: str,
    line: str,
    timeout: float | None,
    **kwargs: Any,
) -> Any:
    """Run `line` with invoke (`Context.run` here, fabric's `Connection.run` over SSH), never
    reading stdin; a timeout becomes CommandTimeout naming `command`. invoke sometimes returns
    the killed command (exit -1, no status) instead of raising CommandTimedOut when its timer
    fires: that is reported as the timeout it is."""
    from invoke.exceptions import CommandTimedOut

    started = time.monotonic()
    try:
        raw = runner(line, warn=True, in_stream=False, timeout=timeout, **kwargs)
    except CommandTimedOut:
        raise CommandTimeout(host, command, timeout or 0) from None
    assert raw is not None  # invoke returns None only for disowned commands
    if timeout is not None and raw.exited == -1 and time.monotonic() - started >= timeout:
        raise CommandTimeout(host, command, timeout)
    return raw


def invoke_stream(
    runner: Callable[..., Any],
    host: str,
    command: str,
    line: str,
    sink: Sink,
    timeout: float | None,
) -> int:
    """invoke_run with stdout and stderr handed to `sink` as they come; the exit code."""
    writer = SinkWriter(sink)
    raw = invoke_run(runner, host, command, line, timeout, out_stream=writer, err_stream=writer)
    return int(raw.exited)


def command_result(
    host: str, user: str, command: str, raw: Any, *, as_root: bool, check: bool
) -> Result:
    """invoke's result as a Result; raises SudoRefused or (check=True) HostCommandError."""
    result = Result(command, raw.exited, raw.stdout, raw.stderr)
    if as_root:
        check_sudo(host, user, result)
    if check and not result.ok:
        raise HostCommandError(host, result)
    return result


class SinkWriter:
    """A file-like object for invoke's out_stream/err_stream that forwards to a sink."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def write(self, text: str) -> int:
        self._sink(text)
        return len(text)

    def flush(self) -> None:
        return None


class LocalTransport:
    """This machine, through invoke (the library fabric runs remote commands with)."""

    name = "local"

    def __init__(self) -> None:
        from invoke.context import Context

        self._context = Context()
        self._root = os.geteuid() == 0

    def run(
        self,
        command: str,
        *,
        check: bool = True,
        env: dict[str, str] | None = None,
        sudo: bool = False,
        timeout: float | None = None,
    ) -> Result:
        as_root = sudo and not self._root
        line = shell_command(command, env, True) if as_root else command
        raw = invoke_run(
            self._context.run,
            self.name,
            command,
            line,
            timeout,
            hide=True,
            env={} if as_root else env or {},
        )
        return command_result(
            self.name, getpass.getuser(), command, raw, as_root=as_root, check=check
        )

    def put(self, local: Path, remote: str, progress: Progress | None = None) -> None:
        size = local.stat().st_size
        tmp = f"{remote}.part"
        shutil.copyfile(local, tmp)
        Path(tmp).replace(remote)
        if progress:
            progress(size, size)

    def get(self, remote: str, local: Path) -> None:
        tmp = local.with_name(f"{local.name}.part")
        shutil.copyfile(remote, tmp)
        tmp.replace(local)

    def stream(
        self, command: str, sink: Sink, *, sudo: bool = False, timeout: float | None = None
    ) -> int:
        line = shell_command(command, None, True) if sudo and not self._root else command
        return invoke_stream(self._context.run, self.name, command, line, sink, timeout)

    def close(self) -> None:
        return None

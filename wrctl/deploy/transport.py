"""How wrctl reaches a host: run a shell command, copy a file. Local and SSH share one API,
so a rollout runs the same steps whether the host is this machine or a remote one."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from wrctl.errors import WrctlError

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


class HostCommandError(WrctlError):
    """A command on a host exited non-zero."""

    def __init__(self, host: str, result: Result) -> None:
        detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        super().__init__(
            f"{host}: `{result.command}` exited {result.exit_code}"
            + ("\n  " + "\n  ".join(detail) if detail else "")
        )
        self.result = result


class Transport(Protocol):
    name: str

    def run(self, command: str, *, check: bool = True, env: dict[str, str] | None = None) -> Result:
        """Run a shell command on the host."""
        ...

    def put(self, local: Path, remote: str, progress: Progress | None = None) -> None:
        """Copy a local file to a path on the host (parent directory must exist)."""
        ...

    def close(self) -> None: ...


class LocalTransport:
    """This machine, through invoke (the library fabric runs remote commands with)."""

    name = "local"

    def __init__(self) -> None:
        from invoke.context import Context

        self._context = Context()

    def run(self, command: str, *, check: bool = True, env: dict[str, str] | None = None) -> Result:
        raw = self._context.run(command, hide=True, warn=True, env=env or {}, in_stream=False)
        assert raw is not None  # invoke returns None only for disowned commands
        result = Result(command, raw.exited, raw.stdout, raw.stderr)
        if check and not result.ok:
            raise HostCommandError(self.name, result)
        return result

    def put(self, local: Path, remote: str, progress: Progress | None = None) -> None:
        size = local.stat().st_size
        tmp = f"{remote}.part"
        shutil.copyfile(local, tmp)
        Path(tmp).replace(remote)
        if progress:
            progress(size, size)

    def close(self) -> None:
        return None


def quote(value: str | Path) -> str:
    return shlex.quote(str(value))

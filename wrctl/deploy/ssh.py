"""The SSH transport: fabric/paramiko with known_hosts checking, key or agent auth, an
optional jump host, sudo without prompts, and atomic SFTP uploads with progress."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko

from wrctl.config.targets import DEFAULT_KNOWN_HOSTS
from wrctl.deploy.hostkeys import (
    HostKeyError,
    KnownHostsPolicy,
    changed_key_error,
    host_id,
    load_known_hosts,
)
from wrctl.deploy.transport import (
    Progress,
    Result,
    Sink,
    command_result,
    invoke_run,
    invoke_stream,
    shell_command,
)
from wrctl.errors import WrctlError

if TYPE_CHECKING:
    from fabric import Connection

CONNECT_TIMEOUT_S = 10.0
KEEPALIVE_S = 30
_JUMP = re.compile(r"(?:(?P<user>[^@\s]+)@)?(?P<host>\[[^\]]+\]|[^:@\s\[\]]+)(?::(?P<port>\d+))?")


class SshError(WrctlError):
    """The SSH connection could not be made or was lost."""


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    user: str

    @property
    def label(self) -> str:
        return f"{self.user}@{self.host}" + ("" if self.port == 22 else f":{self.port}")


def parse_jump_host(spec: str, default_user: str) -> Endpoint:
    """`user@host:port`, `user@host`, `host:port` or `host` ([v6] in brackets)."""
    match = _JUMP.fullmatch(spec.strip())
    port = int(match["port"]) if match and match["port"] else 22
    if not match or not 1 <= port <= 65535:
        raise SshError(
            f"jump_host {spec!r}: expected `host`, `host:port`, `user@host` or `user@host:port`"
        )
    return Endpoint(match["host"].strip("[]"), port, match["user"] or default_user)


@dataclass(frozen=True)
class SshOptions:
    """How to reach one host: who, which key (None = agent and default keys), through which
    jump host, checked against which known_hosts, and whether new host keys may be added."""

    host: str
    user: str
    port: int = 22
    key_path: str | None = None
    jump_host: str | None = None
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    accept_new_host_key: bool = False
    connect_timeout_s: float = CONNECT_TIMEOUT_S

    def key_file(self) -> str | None:
        if self.key_path is None:
            return None
        path = Path(self.key_path).expanduser()
        if not path.is_file():
            raise SshError(
                f"{self.user}@{self.host}: ssh_key {self.key_path} ({path}) does not exist"
            )
        return str(path)


class SshTransport:
    """A host over SSH. Opening connects (and checks the host key) at once, so a bad host,
    key or jump host fails before any step runs."""

    def __init__(self, options: SshOptions) -> None:
        self.options = options
        self.endpoint = Endpoint(options.host, options.port, options.user)
        self._known_hosts = Path(options.known_hosts).expanduser()
        self._policy = KnownHostsPolicy(self._known_hosts, options.accept_new_host_key)
        self._key = options.key_file()
        self._gateway: Connection | None = None
        if options.jump_host:
            jump = parse_jump_host(options.jump_host, options.user)
            self._gateway = self._connection(jump, None)
            self._open(self._gateway, jump, "jump host ")
        self.name = self.endpoint.label + (f" (via {options.jump_host})" if self._gateway else "")
        self._conn = self._connection(self.endpoint, self._gateway)
        try:
            self._open(self._conn, self.endpoint, "")
        except BaseException:
            self.close()
            raise
        # keep long quiet steps (offline install, image build) alive through NAT and firewalls
        self._conn.transport.set_keepalive(KEEPALIVE_S)

    def _connection(self, at: Endpoint, gateway: Connection | None) -> Connection:
        from fabric import Config, Connection

        timeout = self.options.connect_timeout_s
        kwargs: dict[str, Any] = {
            "look_for_keys": self._key is None,
            "allow_agent": True,
            "banner_timeout": timeout,
            "auth_timeout": timeout,
        }
        if self._key:
            kwargs["key_filename"] = [self._key]
        conn = Connection(
            at.host,
            user=at.user,
            port=at.port,
            # No ~/.ssh/config (the cluster file says how to connect); never read stdin.
            config=Config(overrides={"load_ssh_configs": False, "run": {"in_stream": False}}),
            connect_timeout=timeout,
            connect_kwargs=kwargs,
            gateway=gateway,
        )
        conn.client.set_missing_host_key_policy(self._policy)
        load_known_hosts(conn.client, self._known_hosts)
        return conn

    def _open(self, conn: Connection, at: Endpoint, role: str) -> None:
        """Connect, turning every failure into one line naming the host and the cause."""
        where = f"{role}{at.label}"
        try:
            conn.open()
        except HostKeyError:
            raise
        except paramiko.BadHostKeyException as exc:
            raise changed_key_error(
                self._known_hosts, host_id(at.host, at.port), exc.key, exc.expected_key
            ) from None
        except paramiko.PasswordRequiredException:
            raise SshError(
                f"{where}: ssh_key {self._key} is encrypted; add it to ssh-agent instead"
            ) from None
        except paramiko.AuthenticationException:
            key = self._key or "ssh-agent and default keys"
            raise SshError(f"{where}: authentication as {at.user!r} failed ({key})") from None
        except paramiko.ChannelException as exc:
            raise SshError(f"{where}: the jump host could not reach it ({exc})") from None
        except TimeoutError:
            raise SshError(
                f"{where}: no answer within {self.options.connect_timeout_s:g}s"
            ) from None
        except (paramiko.SSHException, OSError) as exc:
            raise SshError(f"{where}: cannot connect ({exc})") from None

    @property
    def is_root(self) -> bool:
        return self.options.user == "root"

    def run(
        self,
        command: str,
        *,
        check: bool = True,
        env: dict[str, str] | None = None,
        sudo: bool = False,
        timeout: float | None = None,
    ) -> Result:
        as_root = sudo and not self.is_root
        line = shell_command(command, env, as_root)
        try:
            raw = invoke_run(self._conn.run, self.name, command, line, timeout, hide=True)
        except (paramiko.SSHException, OSError) as exc:
            raise SshError(f"{self.name}: connection lost running `{command}`: {exc}") from None
        return command_result(
            self.name, self.options.user, command, raw, as_root=as_root, check=check
        )

    def put(self, local: Path, remote: str, progress: Progress | None = None) -> None:
        part = f"{remote}.part"
        sftp = self._conn.sftp()
        try:
            sftp.put(str(local), part, callback=progress, confirm=True)
            sftp.posix_rename(part, remote)
        except OSError as exc:
            with contextlib.suppress(OSError):
                sftp.remove(part)
            raise SshError(f"{self.name}: copying {local} to {remote} failed: {exc}") from None

    def get(self, remote: str, local: Path) -> None:
        part = local.with_name(f"{local.name}.part")
        try:
            self._conn.sftp().get(remote, str(part))
        except OSError as exc:
            part.unlink(missing_ok=True)
            raise SshError(f"{self.name}: copying {remote} to {local} failed: {exc}") from None
        part.replace(local)

    def stream(
        self, command: str, sink: Sink, *, sudo: bool = False, timeout: float | None = None
    ) -> int:
        line = shell_command(command, None, sudo and not self.is_root)
        try:
            return invoke_stream(self._conn.run, self.name, command, line, sink, timeout)
        except (paramiko.SSHException, OSError) as exc:
            raise SshError(f"{self.name}: connection lost running `{command}`: {exc}") from None

    def close(self) -> None:
        for conn in (getattr(self, "_conn", None), self._gateway):
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

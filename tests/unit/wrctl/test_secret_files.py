"""Secrets reach a host as 0600 files, never in a command line (local transport, real files)."""

from __future__ import annotations

import stat
from pathlib import Path

from tests.unit.wrctl.test_rollout import _NoServices
from wrctl.bundle.build import STATE_PASSWORD, state_password_file
from wrctl.deploy.rollout import Rollout, TargetHost
from wrctl.deploy.transport import LocalTransport, Result

PASSWORD = "s3cr:et\\pw"
KEY = b"-----BEGIN PRIVATE KEY-----\nnot-a-real-key\n-----END PRIVATE KEY-----\n"


class _Recording(LocalTransport):
    """The local transport, keeping every command line it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.commands: list[str] = []

    def run(self, command: str, **kwargs: object) -> Result:
        self.commands.append(command + repr(kwargs.get("env")))
        return super().run(command, **kwargs)  # type: ignore[arg-type]


def _rollout(tmp_path: Path) -> tuple[Rollout, _Recording]:
    transport = _Recording()
    workdir = str(tmp_path / "host")
    host = TargetHost(transport, workdir, _NoServices(), "/usr/bin")  # type: ignore[arg-type]
    return Rollout(host, "manager"), transport


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_password_file_escapes_like_install_sh() -> None:
    assert state_password_file("p:a\\ss w") == b"*:*:*:*:p\\:a\\\\ss w\n"


def test_host_secrets_are_0600_files_and_never_in_a_command(tmp_path: Path) -> None:
    rollout, transport = _rollout(tmp_path)
    rollout.put_host_secrets({STATE_PASSWORD.file: state_password_file(PASSWORD)})
    pgpass = tmp_path / "host" / STATE_PASSWORD.file
    assert pgpass.read_bytes() == state_password_file(PASSWORD)
    assert _mode(pgpass) == 0o600
    rollout.put_host_secrets({STATE_PASSWORD.file: state_password_file("new")})
    assert pgpass.read_bytes() == b"*:*:*:*:new\n" and _mode(pgpass) == 0o600
    assert not list((tmp_path / "host").rglob(".secret.*"))  # no staging dir left
    assert transport.commands and not any("s3cr" in c for c in transport.commands)


def test_tls_keys_are_0600_in_a_0700_dir_and_never_in_a_command(tmp_path: Path) -> None:
    rollout, transport = _rollout(tmp_path)
    files = {"node.key": KEY, "node.crt": b"cert", "ca.crt": b"ca"}
    assert rollout.put_credentials(files)
    tls = tmp_path / "host" / "manager" / "tls"
    assert _mode(tls) == 0o700
    assert {p.name: (p.read_bytes(), _mode(p)) for p in tls.iterdir()} == {
        name: (data, 0o600) for name, data in files.items()
    }
    assert not rollout.put_credentials(files)  # unchanged: nothing copied
    assert not list((tmp_path / "host").rglob(".secret.*"))
    assert not any("not-a-real-key" in c for c in transport.commands)

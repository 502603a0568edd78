"""The one way a secret (a password, a private key) reaches a host: as a 0600 file copied
over SFTP, never as a command argument or an exported variable, which `ps`, sudo's log and
shell history would show."""

from __future__ import annotations

import tempfile
from pathlib import Path

from wrctl.deploy.transport import Transport, quote


def put_secret_file(
    transport: Transport,
    data: bytes,
    remote: str,
    *,
    staging: str,
    sudo: bool = False,
    owner: str | None = None,
) -> None:
    """Write `data` to `remote` as a 0600 file, replacing any old one atomically; chowned
    to `owner` when given (`user:group` or `--reference=DIR`), through sudo when `sudo`.
    The copy lands first in a private (0700) dir that mktemp makes in `staging` (writable by
    the deploy user, on the same file system as `remote`), so no other user can open it
    before it is 0600; then it is renamed into place. Command lines name only paths."""
    stage = transport.run(f"mktemp -d {quote(staging)}/.secret.XXXXXX").stdout.strip()
    staged = f"{stage}/{Path(remote).name}"
    try:
        with tempfile.TemporaryDirectory(prefix="wrctl-secret-") as tmp:
            local = Path(tmp) / "secret"
            local.touch(0o600)
            local.write_bytes(data)
            transport.put(local, staged)
        chown = f"chown {quote(owner)} {quote(staged)} && " if owner else ""
        transport.run(f"chmod 600 {quote(staged)}")
        transport.run(f"{chown}mv -f {quote(staged)} {quote(remote)}", sudo=sudo)
    finally:
        transport.run(f"rm -rf {quote(stage)}", check=False, sudo=sudo)

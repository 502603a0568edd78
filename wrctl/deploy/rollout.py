"""One target's rollout on one host: upload if missing -> verify -> unpack -> install ->
switch `current` -> restart; and the way back (rollback, removal, pruning)."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from wrctl.bundle.build import Bundle
from wrctl.deploy.formats import ServiceFormat
from wrctl.deploy.transport import Progress, Transport, quote
from wrctl.errors import WrctlError

KEEP_RELEASES = 3


@dataclass
class TargetHost:
    """Where a target lives: its transport, workdir and service format."""

    transport: Transport
    workdir: str
    format: ServiceFormat
    runtime_bin: str  # where wr-* and supervisord live on the host ("" = the release's venv)
    python: str = "python3"  # the interpreter install.sh builds the release's venv with
    sudo: bool = False  # may wrctl use sudo to create the workdir

    def path(self, target: str, *parts: str) -> str:
        return "/".join([self.workdir, target, *parts])


class Rollout:
    def __init__(self, host: TargetHost, target: str) -> None:
        self.host = host
        self.target = target
        self._t = host.transport

    def current_release(self) -> str | None:
        result = self._t.run(
            f"readlink {quote(self.host.path(self.target, 'current'))}", check=False
        )
        if not result.ok:
            return None
        return result.stdout.strip().rsplit("/", 1)[-1] or None

    def put_credentials(self, files: dict[str, bytes]) -> bool:
        """Put the node's TLS files in TARGET/tls/ (owner-only), outside any release so no
        bundle carries a key; only what differs is copied. True when something changed."""
        directory = self.host.path(self.target, "tls")
        self._t.run(f"mkdir -p {quote(directory)} && chmod 700 {quote(directory)}")
        listing = self._t.run(f"cd {quote(directory)} && sha256sum * 2>/dev/null", check=False)
        have = {line.split()[-1]: line.split()[0] for line in listing.stdout.splitlines() if line}
        changed = False
        for name, data in sorted(files.items()):
            if have.get(name) == hashlib.sha256(data).hexdigest():
                continue
            with tempfile.TemporaryDirectory(prefix="wrctl-tls-") as tmp:
                local = Path(tmp) / name
                local.write_bytes(data)
                local.chmod(0o600)
                self._t.put(local, f"{directory}/{name}")
            self._t.run(f"chmod 600 {quote(directory + '/' + name)}")
            changed = True
        return changed

    def has_release(self, release: str) -> bool:
        """Is releases/<release>/ unpacked and installed on the host?"""
        path = self.host.path(self.target, "releases", release, "install.sh")
        return self._t.run(f"test -f {quote(path)}", check=False).ok

    def upload(self, bundle: Bundle, progress: Progress | None = None) -> bool:
        """Put the bundle on the host unless a verified copy is there; True when uploaded."""
        hexdigest = bundle.digest.removeprefix("sha256:")
        bundles = self.host.path(self.target, "bundles")
        remote = f"{bundles}/{hexdigest}.tar.gz"
        self._t.run(f"mkdir -p {quote(bundles)} {quote(self.host.path(self.target, 'releases'))}")
        if self._remote_digest(remote) == hexdigest:
            return False
        self._t.put(bundle.path, remote, progress)
        got = self._remote_digest(remote)
        if got != hexdigest:
            self._t.run(f"rm -f {quote(remote)}", check=False)
            raise WrctlError(
                f"{self._t.name}: uploaded bundle has sha256 {got}, expected {hexdigest}"
            )
        return True

    def _remote_digest(self, remote: str) -> str | None:
        result = self._t.run(f"sha256sum {quote(remote)}", check=False)
        return result.stdout.split()[0] if result.ok and result.stdout else None

    def unpack_and_install(self, bundle: Bundle) -> str:
        """Unpack into releases/<digest>/ (atomically, once) and run its install.sh."""
        hexdigest = bundle.digest.removeprefix("sha256:")
        release = self.host.path(self.target, "releases", hexdigest)
        tmp = self.host.path(self.target, "releases", f".{hexdigest}.tmp")
        archive = self.host.path(self.target, "bundles", f"{hexdigest}.tar.gz")
        self._t.run(
            f"if [ ! -d {quote(release)} ]; then rm -rf {quote(tmp)} && mkdir -p {quote(tmp)} && "
            f"tar -xzf {quote(archive)} -C {quote(tmp)} && mv {quote(tmp)} {quote(release)}; fi"
        )
        env = {"WR_PYTHON": self.host.python}
        if self.host.runtime_bin:
            env["WR_RUNTIME_BIN"] = self.host.runtime_bin
        fmt = self.host.format
        self._t.run(
            f"sh {quote(release + '/install.sh')} {quote(self.host.workdir)} "
            f"{quote(self.target)} {quote(fmt.name)}",
            env=env,
            sudo=fmt.install_as_root,
        )
        return hexdigest

    def switch(self, release: str | None) -> None:
        """Point `current` at releases/<release> atomically (rename over the old link);
        None removes it."""
        current = self.host.path(self.target, "current")
        if release is None:
            self._t.run(f"rm -f {quote(current)}")
            return
        tmp = f"{current}.new"
        self._t.run(
            f"ln -sfn {quote('releases/' + release)} {quote(tmp)} && "
            f"mv -Tf {quote(tmp)} {quote(current)}"
        )

    def restart(self) -> None:
        self.host.format.ensure_running()
        self.host.format.restart(self.target)

    def remove(self) -> None:
        """Stop the target's services and delete everything it has on the host."""
        self.switch(None)
        self.host.format.remove(self.target)
        # a root-run install.sh (systemd) leaves root-owned files: delete them as root too
        root = self.host.format.install_as_root
        self._t.run(f"rm -rf {quote(self.host.path(self.target))}", sudo=root)

    def prune(self, keep: int = KEEP_RELEASES) -> list[str]:
        """Delete releases (and their bundles) beyond the newest `keep`, never the current one."""
        releases = self.host.path(self.target, "releases")
        listing = self._t.run(f"ls -1t {quote(releases)}", check=False).stdout.split()
        current = self.current_release()
        doomed = [r for r in listing if not r.startswith(".")][keep:]
        doomed = [r for r in doomed if r != current]
        for release in doomed:
            self._t.run(
                f"rm -rf {quote(releases + '/' + release)} "
                f"{quote(self.host.path(self.target, 'bundles', release + '.tar.gz'))}",
                sudo=self.host.format.install_as_root,
            )
        return doomed

    def log_tail(self, lines: int = 50) -> str:
        return self.host.format.log_tail(self.target, lines)

"""One target's rollout on one host: upload if missing -> verify -> unpack -> install ->
switch `current` -> restart; and the way back (rollback, removal, pruning)."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wrctl.bundle.build import Bundle
from wrctl.deploy.formats import ServiceFormat
from wrctl.deploy.secretfile import put_secret_file
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


def bundle_short(release_dir: str) -> str:
    """The first 12 hex of the digest a (temp) release dir is named after."""
    return release_dir.rsplit("/", 1)[-1].lstrip(".")[:12]


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
        bundle carries a key; only what differs is copied. True when something changed.
        Formats that run services as the `wruntime` user (systemd) get the files owned by
        it, through sudo; the others keep them the deploy user's."""
        root = self.host.format.install_as_root
        owner = "wruntime:wruntime" if root else None
        directory = self.host.path(self.target, "tls")
        chown = "-o wruntime -g wruntime " if root else ""
        self._t.run(f"install -d -m 700 {chown}{quote(directory)}", sudo=root)
        listing = self._t.run(
            f"cd {quote(directory)} && sha256sum -- * 2>/dev/null", check=False, sudo=root
        )
        have = {line.split()[-1]: line.split()[0] for line in listing.stdout.splitlines() if line}
        changed = False
        for name, data in sorted(files.items()):
            if have.get(name) != hashlib.sha256(data).hexdigest():
                self._put_secret(data, f"{directory}/{name}", owner)
                changed = True
        return changed

    def put_host_secrets(self, files: Mapping[str, bytes]) -> None:
        """Write the secrets install.sh expects on the host (path relative to the workdir ->
        content), e.g. the manager's pgpass, before install.sh runs. As root (systemd) a
        file takes its dir's owner, so the running service (user `wruntime`, the owner once
        install.sh has run) can read it before install.sh chowns again."""
        root = self.host.format.install_as_root
        for relative, data in sorted(files.items()):
            remote = f"{self.host.workdir}/{relative}"
            parent = remote.rsplit("/", 1)[0]
            self._t.run(f"mkdir -p {quote(parent)}", sudo=root)
            self._put_secret(data, remote, f"--reference={parent}" if root else None)

    def _put_secret(self, data: bytes, remote: str, owner: str | None) -> None:
        root = self.host.format.install_as_root
        staging = self.host.path(self.target)
        self._t.run(f"mkdir -p {quote(staging)}")
        put_secret_file(self._t, data, remote, staging=staging, sudo=root, owner=owner)

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

    def unpack_and_install(
        self,
        bundle: Bundle,
        trusted_keys: Sequence[str] = (),
    ) -> str:
        """Unpack into a temp dir, verify it there (hashes, schema, and the signature when
        trusted_keys are set), move it to releases/<digest>/ (once), run its install.sh."""
        hexdigest = bundle.digest.removeprefix("sha256:")
        release = self.host.path(self.target, "releases", hexdigest)
        tmp = self.host.path(self.target, "releases", f".{hexdigest}.tmp")
        archive = self.host.path(self.target, "bundles", f"{hexdigest}.tar.gz")
        if not self._t.run(f"test -d {quote(release)}", check=False).ok:
            self._t.run(
                f"rm -rf {quote(tmp)} && mkdir -p {quote(tmp)} && "
                f"tar -xzf {quote(archive)} -C {quote(tmp)}"
            )
            self._verify(tmp, trusted_keys)
            self._t.run(f"mv {quote(tmp)} {quote(release)}")
        run_env = {"WR_PYTHON": self.host.python}
        if self.host.runtime_bin:
            run_env["WR_RUNTIME_BIN"] = self.host.runtime_bin
        fmt = self.host.format
        self._t.run(
            f"sh {quote(release + '/install.sh')} {quote(self.host.workdir)} "
            f"{quote(self.target)} {quote(fmt.name)}",
            env=run_env,
            sudo=fmt.install_as_root,
        )
        return hexdigest

    def _verify(self, unpacked: str, trusted_keys: Sequence[str]) -> None:
        """Run wrctl's own copy of the verifier (not the bundle's, which is what is being
        checked) on the host; refuse the bundle with the verifier's one-line reason."""
        from wrctl.bundle.build import verifier_script

        verifier = self.host.path(self.target, "bin", "wr-verify-bundle")
        self._t.run(f"mkdir -p {quote(self.host.path(self.target, 'bin'))}")
        with tempfile.TemporaryDirectory() as local:
            script = Path(local) / "wr-verify-bundle"
            script.write_bytes(verifier_script())
            self._t.put(script, verifier)
        keys = " ".join(f"--trusted-key {quote(k)}" for k in trusted_keys)
        result = self._t.run(
            f"{quote(self.host.python)} {quote(verifier)} {quote(unpacked)} {keys}", check=False
        )
        if not result.ok:
            self._t.run(f"rm -rf {quote(unpacked)}", check=False)
            reason = (result.stderr or result.stdout).strip().splitlines()
            detail = reason[-1].split(": ", 2)[-1] if reason else f"exit {result.exit_code}"
            raise WrctlError(
                f"{self._t.name}: {self.target}: bundle {bundle_short(unpacked)} refused before "
                f"install: {detail}"
            )

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
        if doomed:
            self._prune_venvs()
            self.host.format.forget_releases(self.target, doomed)
        return doomed

    def _prune_venvs(self) -> None:
        """Delete shared venvs (WORKDIR/venvs/) that no release of any target links to,
        under the lock install.sh takes, so a venv being made is never removed."""
        workdir = self.host.workdir
        script = (
            f"cd {quote(workdir)}/venvs 2>/dev/null || exit 0; "
            "exec 9>.lock; flock 9; "
            'for v in *; do [ -d "$v" ] || continue; used=; '
            f"for l in {quote(workdir)}/*/releases/*/venv; do "
            f'[ "$(readlink "$l")" = {quote(workdir)}/venvs/"$v" ] && used=1 && break; done; '
            '[ -n "$used" ] || rm -rf -- "$v"; done'
        )
        self._t.run(script, check=False, sudo=self.host.format.install_as_root)

    def log_tail(self, lines: int = 50) -> str:
        return self.host.format.log_tail(self.target, lines)

"""The supervisor format: one supervisord per workdir, run by the deploy user, runs every
target's programs.

Programs come from `WORKDIR/*/current/etc/supervisor/*.conf`, so switching a target's
`current` symlink and restarting its group is how a release goes live. supervisord itself
comes from an installed runtime (`bin_dir`, the local quick start) or, on a remote host, from
a venv wrctl makes once in `WORKDIR/supervisor-venv` from a release's bundled wheels, so it
outlives the releases it runs.
"""

from __future__ import annotations

from wrctl.deploy.formats import RemoteCommand, program_name
from wrctl.deploy.transport import Transport, quote
from wrctl.errors import WrctlError

VENV_DIR = "supervisor-venv"
START_POLLS = 100  # x 0.1 s on the host: how long supervisord may take to answer


class SupervisorFormat:
    name = "supervisor"
    install_as_root = False

    def __init__(
        self, transport: Transport, workdir: str, bin_dir: str, python: str | None = None
    ) -> None:
        """`python` set: `bin_dir` is a venv that ensure_running may create with it."""
        self._t = transport
        self._workdir = workdir
        self._bin = bin_dir
        self._python = python

    @classmethod
    def remote(cls, transport: Transport, workdir: str, python: str) -> SupervisorFormat:
        """supervisord from `WORKDIR/supervisor-venv`, made with `python` when missing."""
        return cls(transport, workdir, f"{workdir}/{VENV_DIR}/bin", python)

    @property
    def _conf(self) -> str:
        return quote(f"{self._workdir}/supervisord.conf")

    def _ctl(self, args: str, check: bool = True) -> str:
        return self._t.run(
            f"{quote(self._bin)}/supervisorctl -c {self._conf} {args}", check=check
        ).stdout

    def preflight(self) -> list[str]:
        if self._t.run(f"test -x {quote(self._bin)}/supervisord", check=False).ok:
            return []
        if self._python is None:
            return [f"supervisord not found in {self._bin}"]
        probe = self._t.run(f"{quote(self._python)} -c 'import venv, ensurepip'", check=False)
        if probe.ok:
            return []
        return [
            f"supervisord is not installed ({self._bin}) and {self._python} cannot create the "
            "virtualenv to install it from the bundle's wheels (install python3-venv)"
        ]

    def _install(self) -> None:
        """Make the supervisor venv from the wheels of any installed release (pip writes the
        supervisord script last, so a venv without it is incomplete and made again)."""
        assert self._python is not None
        venv = quote(self._bin.removesuffix("/bin"))
        script = f"""set -e
for w in {quote(self._workdir)}/*/current/wheels; do
  if [ -d "$w" ]; then
    rm -rf {venv}
    {quote(self._python)} -m venv {venv}
    {venv}/bin/pip install --quiet --no-index --find-links "$w" supervisor
    exit 0
  fi
done
echo "no installed release with a wheels/ dir under {self._workdir}" >&2
exit 3
"""
        self._t.run(script, timeout=600)

    def ensure_running(self) -> None:
        """Start supervisord for this workdir unless it already answers."""
        ctl = f"{quote(self._bin)}/supervisorctl -c {self._conf}"
        probe = self._t.run(f"{ctl} pid", check=False)
        if probe.ok and probe.stdout.strip().isdigit():
            return
        if (
            self._python is not None
            and not self._t.run(f"test -x {quote(self._bin)}/supervisord", check=False).ok
        ):
            self._install()
        self._t.run(f"{quote(self._bin)}/supervisord -c {self._conf}")
        self._t.run(
            f"for i in $(seq 1 {START_POLLS}); do "
            f"{ctl} pid >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1"
        )

    def restart(self, target: str) -> None:
        """Load changed program definitions, then (re)start the target's group."""
        self._ctl("reread")
        self._ctl("update")
        self._ctl(f"restart wr-{target}:*", check=False)
        status = self._ctl(f"start wr-{target}:*", check=False)
        if "ERROR" in status and "already started" not in status:
            raise WrctlError(f"supervisor could not start wr-{target}: {status.strip()}")

    def stop(self, target: str) -> None:
        self._ctl(f"stop wr-{target}:*", check=False)

    def forget_releases(self, target: str, releases: list[str]) -> None:
        """Programs point at `current`: nothing is kept per release."""

    def remove(self, target: str) -> None:
        """Stop the target's programs and forget them (its `current` link is gone by then)."""
        self.stop(target)
        self._ctl("reread", check=False)
        self._ctl("update", check=False)

    def shutdown_if_idle(self) -> bool:
        """Stop supervisord when no program is left; True when it was stopped."""
        status = self._ctl("status", check=False).strip()
        if status and "no such" not in status.lower():
            return False
        pid = self._ctl("pid", check=False).strip()
        self._ctl("shutdown", check=False)
        if pid.isdigit():  # shutdown only asks; wait (bounded) until supervisord is gone
            self._t.run(
                f"for i in $(seq 1 {START_POLLS}); do kill -0 {pid} 2>/dev/null || exit 0; "
                "sleep 0.1; done; exit 1",
                check=False,
            )
        return True

    def _log_files(self, target: str) -> str:
        """Shell snippet: the log files of the target's programs (from its programs.conf)."""
        confs = quote(f"{self._workdir}/{target}/current/etc/supervisor") + "/*.conf"
        logs = quote(f"{self._workdir}/logs")
        return (
            f"sed -n 's/^\\[program:\\(.*\\)\\]$/\\1/p' {confs} 2>/dev/null "
            f'| while read -r p; do echo {logs}/"$p".log; done'
        )

    def log_tail(self, target: str, lines: int = 50) -> str:
        return self._t.run(
            f"for f in $({self._log_files(target)}); do "
            f'[ -f "$f" ] && echo "==> $f" && tail -n {int(lines)} "$f"; done; true',
            check=False,
        ).stdout

    def logs_command(
        self, target: str, service: str | None, follow: bool, lines: int
    ) -> RemoteCommand:
        if service:
            files = quote(f"{self._workdir}/logs/{program_name(target, service)}.log")
        else:
            files = f"$({self._log_files(target)})"
        tail = f"tail -n {int(lines)}" + (" -F" if follow else "")
        return RemoteCommand(
            f"files={files}; "
            f'[ -n "$files" ] || {{ echo "no programs of {target} here" >&2; exit 1; }}; '
            f"exec {tail} $files"
        )

"""The supervisor format: one supervisord per workdir runs every target's programs.

Programs come from `WORKDIR/*/current/etc/supervisor/*.conf`, so switching a target's
`current` symlink and restarting its group is how a release goes live.
"""

from __future__ import annotations

from wrctl.deploy.transport import Transport, quote


class SupervisorFormat:
    name = "supervisor"

    def __init__(self, transport: Transport, workdir: str, bin_dir: str) -> None:
        self._t = transport
        self._workdir = workdir
        self._bin = bin_dir

    def _ctl(self, args: str, check: bool = True) -> str:
        conf = quote(f"{self._workdir}/supervisord.conf")
        return self._t.run(f"{quote(self._bin)}/supervisorctl -c {conf} {args}", check=check).stdout

    def preflight(self) -> list[str]:
        result = self._t.run(f"test -x {quote(self._bin)}/supervisord", check=False)
        return [] if result.ok else [f"supervisord not found in {self._bin}"]

    def ensure_running(self) -> None:
        """Start supervisord for this workdir unless it already answers."""
        conf = quote(f"{self._workdir}/supervisord.conf")
        probe = self._t.run(f"{quote(self._bin)}/supervisorctl -c {conf} pid", check=False)
        if probe.ok and probe.stdout.strip().isdigit():
            return
        self._t.run(f"{quote(self._bin)}/supervisord -c {conf}")
        self._t.run(
            "for i in $(seq 1 100); do "
            f"{quote(self._bin)}/supervisorctl -c {conf} pid >/dev/null 2>&1 && exit 0; "
            "sleep 0.1; done; exit 1"
        )

    def restart(self, target: str) -> None:
        """Load changed program definitions, then (re)start the target's group."""
        self._ctl("reread")
        self._ctl("update")
        self._ctl(f"restart wr-{target}:*", check=False)
        status = self._ctl(f"start wr-{target}:*", check=False)
        if "ERROR" in status and "already started" not in status:
            raise RuntimeError(f"supervisor could not start wr-{target}: {status.strip()}")

    def stop(self, target: str) -> None:
        self._ctl(f"stop wr-{target}:*", check=False)

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
        self._ctl("shutdown", check=False)
        return True

    def log_tail(self, target: str, lines: int = 50) -> str:
        logs = quote(f"{self._workdir}/logs")
        return self._t.run(
            f"for f in {logs}/wr-{target.removeprefix('node-')}*.log {logs}/wr-{target}*.log; do "
            f'[ -f "$f" ] && echo "==> $f" && tail -n {lines} "$f"; done; true',
            check=False,
        ).stdout

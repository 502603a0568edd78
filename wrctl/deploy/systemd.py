"""The systemd format: a release's units are copied to /etc/systemd/system and run under
`wr-<TARGET>.target`, whose restart (PartOf=) restarts every program of the target."""

from __future__ import annotations

from wrctl.deploy.formats import RemoteCommand, program_name
from wrctl.deploy.transport import Transport, quote

UNIT_DIR = "/etc/systemd/system"


def target_unit(target: str) -> str:
    return f"wr-{target}.target"


def _units_of(target: str) -> str:
    """Shell snippet printing the installed service units that are PartOf the target."""
    pattern = quote("^PartOf=(.* )?" + target_unit(target).replace(".", "\\.") + "( |$)")
    return f"cd {UNIT_DIR} && grep -l -E {pattern} wr-*.service 2>/dev/null || true"


class SystemdFormat:
    name = "systemd"
    install_as_root = True

    def __init__(self, transport: Transport, workdir: str) -> None:
        self._t = transport
        self._workdir = workdir

    def preflight(self) -> list[str]:
        problems = []
        if not self._t.run("command -v systemctl", check=False).ok:
            return [
                "systemctl not found: the host does not run systemd (use format docker or "
                "supervisor)"
            ]
        sudo = self._t.run("true", sudo=True, check=False)
        if not sudo.ok:
            why = (sudo.stderr.strip().splitlines() or ["refused"])[-1]
            problems.append(f"sudo without a password is not allowed for this user ({why})")
        state = self._t.run("systemctl is-system-running", check=False).stdout.strip()
        if state not in ("running", "degraded", "starting", "initializing", "maintenance"):
            problems.append(f"systemd is not the running init system (state {state or '?'})")
        return problems

    def ensure_running(self) -> None:
        """systemd is always running; nothing to start for the workdir."""

    def restart(self, target: str) -> None:
        """Install the current release's units (dropping the target's units it no longer
        has), daemon-reload, enable the target and restart it."""
        src = quote(f"{self._workdir}/{target}/current/etc/systemd")
        unit = quote(target_unit(target))
        script = f"""set -e
src={src}
if [ ! -d "$src" ] || [ -z "$(ls -A "$src")" ]; then
  echo "no systemd units in $src (was the release installed for format systemd?)" >&2; exit 3
fi
for old in $({_units_of(target)}); do
  if [ ! -f "$src/$old" ]; then systemctl disable --now "$old" || true; rm -f {UNIT_DIR}/"$old"; fi
done
for f in "$src"/*; do
  name=$(basename "$f")
  install -m 0644 "$f" {UNIT_DIR}/."$name".tmp && mv -f {UNIT_DIR}/."$name".tmp {UNIT_DIR}/"$name"
done
systemctl daemon-reload
systemctl enable --quiet {unit}
systemctl restart {unit}
"""
        self._t.run(script, sudo=True)

    def stop(self, target: str) -> None:
        self._t.run(f"systemctl stop {quote(target_unit(target))}", sudo=True, check=False)

    def forget_releases(self, target: str, releases: list[str]) -> None:
        """Units point at `current`: nothing is kept per release."""

    def remove(self, target: str) -> None:
        """Stop and disable the target's units, delete them, daemon-reload."""
        unit = quote(target_unit(target))
        script = f"""units="$({_units_of(target)}) {unit}"
systemctl disable --now $units >/dev/null 2>&1 || true
for u in $units; do rm -f {UNIT_DIR}/"$u"; done
systemctl daemon-reload
systemctl reset-failed $units >/dev/null 2>&1 || true
"""
        self._t.run(script, sudo=True)

    def shutdown_if_idle(self) -> bool:
        """True when no wruntime target unit is left on the host (nothing to stop)."""
        left = self._t.run(f"ls {UNIT_DIR}/wr-*.target 2>/dev/null || true", check=False)
        return not left.stdout.strip()

    def log_tail(self, target: str, lines: int = 50) -> str:
        command = (
            f'for u in $({_units_of(target)}); do echo "==> $u"; '
            f'journalctl --no-pager -o short-iso -n {int(lines)} -u "$u"; done'
        )
        return self._t.run(command, sudo=True, check=False).stdout

    def logs_command(
        self, target: str, service: str | None, follow: bool, lines: int
    ) -> RemoteCommand:
        flags = f"--no-pager -o short-iso -n {int(lines)}" + (" -f" if follow else "")
        if service:
            unit = quote(program_name(target, service) + ".service")
            return RemoteCommand(f"exec journalctl {flags} -u {unit}", sudo=True)
        # every unit of the target, never the whole journal when it has none
        script = (
            f"units=$(for u in $({_units_of(target)}); do printf ' -u %s' \"$u\"; done); "
            f'[ -n "$units" ] || {{ echo "no systemd units of {target} here" >&2; exit 1; }}; '
            f"exec journalctl {flags} $units"
        )
        return RemoteCommand(script, sudo=True)

"""Fake hosts that boot a real systemd as PID 1 of their own PID namespace, each in its own
network namespace with sshd started by that systemd (the distro's ssh.service, enabled)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest

from tests.infra import _cgroups, _netns, _stale, _systemd_boot, policy
from tests.infra.process import ManagedProcess, ProcessNotReady, port_is_open, wait_until
from tests.infra.ssh_hosts import (
    SSHD_KEY_ONLY,
    USER,
    HostAccess,
    ensure_deploy_user,
    fingerprint,
    keygen,
    known_hosts_line,
)

HOST_NAMES = ("node-a", "node-b")
BOOT_DEADLINE_S = 30.0
POWEROFF_DEADLINE_S = 15.0
SESSION_PREFIX = "wrtest-systemd-"
SYSTEMD = Path("/lib/systemd/systemd")
INSTALL_HINT = (
    "run `bash scripts/install-test-deps.sh` (apt-get install systemd openssh-server sudo)"
)


@dataclass
class SystemdHost(HostAccess):
    """A fake host whose PID 1 is systemd. Reach it over SSH like an SshHost (`connect()`,
    user `deploy` with passwordless sudo); `host_path()` maps its private dirs (see
    `_systemd_boot.PRIVATE_DIRS`) to this machine. `inside()` runs a command in all of its
    namespaces as root, for the fixture's own checks."""

    boot: ManagedProcess = field(repr=False, kw_only=True)
    cgroups: list[Path] = field(repr=False, kw_only=True)
    private_dirs: ClassVar[dict[str, str]] = _systemd_boot.PRIVATE_DIRS

    @property
    def console_log(self) -> Path:
        return self.root_dir / "console.log"

    def systemd_pid(self) -> int | None:
        """This machine's PID of the host's systemd (the boot process's only child)."""
        children = Path(f"/proc/{self.boot.pid}/task/{self.boot.pid}/children")
        with contextlib.suppress(OSError):
            for pid in children.read_text().split():
                if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                    return int(pid)
        return None

    def inside(self, *argv: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
        """Run argv as root in every namespace of the host (not over SSH)."""
        pid = self.systemd_pid()
        if pid is None:
            raise RuntimeError(f"{self.name}: systemd is not running")
        command = ["nsenter", "-t", str(pid), "-a", *argv]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)

    def system_state(self) -> str:
        """What `systemctl is-system-running` says: starting, running, degraded, ..."""
        return self.inside("systemctl", "is-system-running").stdout.strip()

    def failed_units(self) -> list[str]:
        out = self.inside("systemctl", "list-units", "--failed", "--plain", "--no-legend").stdout
        return [line.split()[0] for line in out.splitlines() if line.strip()]

    def failure_report(self, reason: str) -> str:
        return (
            f"systemd host {self.name} ({self.address}): {reason}\n"
            f"--- boot log ---\n{self.boot.log_tail()}\n"
            f"--- console ---\n{_tail(self.console_log)}"
        )

    def wait_booted(self, deadline_s: float = BOOT_DEADLINE_S) -> None:
        """Wait until systemd runs and sshd (its ssh.service) accepts connections."""

        def up() -> bool:
            if not self.boot.running:
                raise ProcessNotReady(self.failure_report(f"exited with {self.boot.returncode}"))
            return self.systemd_pid() is not None and port_is_open(self.address, self.port)

        try:
            wait_until(up, deadline_s, f"{self.name} to boot and serve ssh")
        except TimeoutError as exc:
            raise ProcessNotReady(self.failure_report(str(exc))) from None

    def poweroff(self, deadline_s: float = POWEROFF_DEADLINE_S) -> int | None:
        """`systemctl poweroff` inside, wait for the host to end (then make sure it has);
        return the boot process's exit code."""
        if self.boot.running and self.systemd_pid() is not None:
            with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
                self.inside("systemctl", "poweroff", "--no-block", timeout_s=10)
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: not self.boot.running, deadline_s, f"{self.name} to power off")
        return self.boot.stop(grace_s=3)


def _tail(path: Path, n: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except FileNotFoundError:
        return "(none)"


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        policy.unavailable("root (systemd hosts need namespaces and mounts)", "run as root")
    for tool in (str(SYSTEMD), "/usr/sbin/sshd", "ssh-keygen", "sudo", "nsenter", "mknod"):
        if not shutil.which(tool):
            policy.unavailable(f"`{tool}`", INSTALL_HINT)
    reason = _netns.refusal()
    if reason is not None:
        policy.unavailable(f"network namespaces ({reason})", "run on a machine that allows them")


def _sshd_config(address: str, port: int) -> str:
    return "\n".join(
        [
            f"ListenAddress {address}:{port}",
            "HostKey /etc/ssh/ssh_host_ed25519_key",
            "AuthorizedKeysFile .ssh/authorized_keys",
            *SSHD_KEY_ONLY,
            "",
        ]
    )


def _host_root(session: Path, name: str, address: str, client_pub: str) -> Path:
    """The host's private dirs: ssh config and key, deploy's authorized_keys, ssh.service
    enabled, an empty /opt, /var/lib and /var/log (with a journal dir), /etc/hostname and
    /etc/hosts, and the upper dir of its /etc overlay."""
    root = session / name
    for sub in (*_systemd_boot.PRIVATE_DIRS.values(), _systemd_boot.ETC_OVERLAY_WORKDIR):
        if sub not in ("hostname", "hosts"):
            (root / sub).mkdir(parents=True)
    (root / "root-home").chmod(0o700)
    (root / "hostname").write_text(f"{name}\n")
    (root / "hosts").write_text(f"127.0.0.1 localhost\n{address} {name}\n")
    (root / "console.log").touch()
    keygen(root / "etc-ssh" / "ssh_host_ed25519_key", f"wrtest-{name}")
    (root / "etc-ssh" / "sshd_config").write_text(_sshd_config(address, 22))
    wants = root / "etc-systemd-system" / "multi-user.target.wants"
    wants.mkdir()
    (wants / "ssh.service").symlink_to("/lib/systemd/system/ssh.service")
    journal = root / "var-log" / "journal"
    journal.mkdir()
    shutil.chown(journal, "root", "systemd-journal")
    journal.chmod(0o2755)
    home_ssh = root / "home" / ".ssh"
    home_ssh.mkdir(mode=0o700)
    (home_ssh / "authorized_keys").write_text(client_pub + "\n")
    for path in (root / "home", home_ssh, home_ssh / "authorized_keys"):
        shutil.chown(path, USER, USER)
    (home_ssh / "authorized_keys").chmod(0o600)
    return root


def _start_host(session: Path, net: _netns.HostNetwork, index: int, name: str) -> SystemdHost:
    address = net.address(index)
    ns = net.add_host(index, name)
    root = _host_root(session, name, address, (session / "client_ed25519.pub").read_text())
    cgroups = _cgroups.create(ns)  # same name as the namespace: wrtest-<pid><k>-<i>
    try:
        host = _host(session, net, index, name, root, cgroups)
        host.boot.start()
    except BaseException:
        _cgroups.remove(cgroups)
        raise
    return host


def _host(
    session: Path, net: _netns.HostNetwork, index: int, name: str, root: Path, cgroups: list[Path]
) -> SystemdHost:
    ns = net.namespaces[index]
    init = root / "init.sh"
    init.write_text(_systemd_boot.init_script(root, name))
    boot = root / "boot.sh"
    boot.write_text(_systemd_boot.boot_script(_cgroups.join_command(cgroups), ns, init))
    return SystemdHost(
        name=name,
        address=net.address(index),
        port=22,
        user=USER,
        key_path=session / "client_ed25519",
        known_hosts_path=session / "known_hosts",
        host_key_fingerprint=fingerprint(root / "etc-ssh" / "ssh_host_ed25519_key.pub"),
        root_dir=root,
        mode="netns",
        namespace=ns,
        gateway=net.gateway,
        boot=ManagedProcess(["/bin/sh", str(boot)], root / "boot.log", name=f"boot of {name}"),
        cgroups=cgroups,
    )


def remove_stale() -> None:
    """Remove the namespaces, links and cgroups of test runs that are gone."""
    _netns.remove_stale()
    _cgroups.remove_stale()


@contextlib.contextmanager
def fake_systemd_hosts(names: tuple[str, ...] = HOST_NAMES) -> Iterator[list[SystemdHost]]:
    """Boot one systemd host per name and yield them once each serves ssh; on exit power
    them off and remove every process, namespace, link, cgroup and file they had."""
    _check_prerequisites()
    ensure_deploy_user()
    remove_stale()
    session = _stale.owned_temp_dir(SESSION_PREFIX)
    hosts: list[SystemdHost] = []
    net: _netns.HostNetwork | None = None
    try:
        net = _netns.create_network()
        keygen(session / "client_ed25519", "wrtest-client")
        for index, name in enumerate(names):
            hosts.append(_start_host(session, net, index, name))
        (session / "known_hosts").write_text(
            "".join(
                known_hosts_line(
                    h.address, h.port, h.root_dir / "etc-ssh" / "ssh_host_ed25519_key.pub"
                )
                for h in hosts
            )
        )
        for host in hosts:
            host.wait_booted()
        yield hosts
    finally:
        for host in hosts:
            host.poweroff()
        if net is not None:
            net.destroy()
        for host in hosts:
            _cgroups.remove(host.cgroups)
        shutil.rmtree(session, ignore_errors=True)


@pytest.fixture(scope="session")
def systemd_hosts() -> Iterator[list[SystemdHost]]:
    """Two booted systemd hosts (node-a, node-b) for the session; see SystemdHost."""
    with fake_systemd_hosts() as hosts:
        yield hosts


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "systemd: needs fake hosts that boot real systemd")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses `systemd_hosts` with `systemd` (and `ssh`)."""
    for item in items:
        if "systemd_hosts" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.systemd)
            item.add_marker(pytest.mark.ssh)

"""Fake hosts reached over SSH: one OpenSSH sshd per host, each in its own network namespace
with its own address, hostname and /opt (or, where namespaces are refused, on 127.0.0.x)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import shutil
import subprocess
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal

import pytest

from tests.infra import _machine_state, _netns, _stale, policy
from tests.infra.process import ManagedProcess, free_port

if TYPE_CHECKING:
    from fabric import Connection

Mode = Literal["netns", "loopback"]
# Shell commands run in a namespaced host's mount namespace before sshd: the same for every
# host, or made per host name.
HostSetup = tuple[str, ...] | Callable[[str], tuple[str, ...]]
USER = "deploy"
HOST_NAMES = ("node-a", "node-b")
READY_DEADLINE_S = 20.0
SESSION_PREFIX = "wrtest-ssh-"
INSTALL_HINT = "run `bash scripts/install-test-deps.sh` (apt-get install openssh-server sudo)"
# Remote dirs each namespaced host gets privately (remote path -> subdir of the host's root).
PRIVATE_DIRS = {
    "/opt": "opt",
    f"/home/{USER}": "home",
    "/etc/systemd/system": "etc-systemd-system",
}


@dataclass
class HostAccess:
    """How tests (and deploy code under test) reach one fake host over SSH, and where the
    host's private files live on this machine. SshHost and SystemdHost both are one."""

    name: str
    address: str
    port: int
    user: str
    key_path: Path
    known_hosts_path: Path
    host_key_fingerprint: str
    root_dir: Path
    mode: Mode
    namespace: str | None
    gateway: str  # this machine's address as the host sees it (bind services here for it)
    # Remote path -> subdir of root_dir that the host sees there (namespaced hosts only).
    private_dirs: ClassVar[dict[str, str]] = PRIVATE_DIRS

    @property
    def opt_dir(self) -> Path:
        return self.root_dir / "opt"

    @property
    def remote_opt(self) -> str:
        return "/opt" if self.mode == "netns" else str(self.opt_dir)

    def host_path(self, remote: str) -> Path:
        """Where a file the host sees at `remote` lives on this machine (private dirs only)."""
        if self.mode == "loopback":
            return Path(remote)
        for prefix, sub in self.private_dirs.items():
            if remote == prefix or remote.startswith(prefix + "/"):
                return self.root_dir / sub / remote[len(prefix) :].lstrip("/")
        raise ValueError(
            f"{remote!r} is not private to {self.name}: one of {list(self.private_dirs)}"
        )

    def connect(self, known_hosts: Path | None = None, connect_timeout: int = 10) -> Connection:
        """A fabric Connection that checks the host key against known_hosts (default: the
        fixture's) and refuses unknown keys (paramiko.RejectPolicy); nothing from ~/.ssh."""
        from fabric import Config, Connection
        from paramiko import RejectPolicy

        conn = Connection(
            self.address,
            user=self.user,
            port=self.port,
            # No ~/.ssh/config; never read the test process's stdin (pytest captures it).
            config=Config(overrides={"load_ssh_configs": False, "run": {"in_stream": False}}),
            connect_timeout=connect_timeout,
            connect_kwargs={
                "key_filename": str(self.key_path),
                "look_for_keys": False,
                "allow_agent": False,
            },
        )
        conn.client.set_missing_host_key_policy(RejectPolicy())
        conn.client.load_system_host_keys(str(known_hosts or self.known_hosts_path))
        return conn


@dataclass
class SshHost(HostAccess):
    """One fake host. In "netns" mode the host sees `opt_dir` as /opt (`remote_opt`); in
    "loopback" mode hosts share the real filesystem, so `remote_opt` is `opt_dir` itself."""

    sshd: ManagedProcess = field(repr=False, kw_only=True)


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(
            f"`{shlex.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}"
        )
    return done.stdout


def ensure_deploy_user() -> None:
    """Create the `deploy` account (unlocked, key-only) with passwordless sudo, once per machine.

    This is machine set-up, not per-run state, so it stays after the session (recorded for
    scripts/reset-test-machine.sh).
    """
    lock_path = Path("/run/lock/wruntime-test-user.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0:
            _machine_state.record_created("user", USER)  # first: a crash must not hide it
            _run(["useradd", "-m", "-s", "/bin/bash", USER])
        # useradd leaves the account locked ("!"), and sshd refuses locked accounts even for keys.
        if _run(["getent", "shadow", USER]).split(":")[1] != "*":
            _run(["usermod", "-p", "*", USER])
        sudoers = Path("/etc/sudoers.d") / USER
        rule = f"{USER} ALL=(ALL) NOPASSWD:ALL\n"
        if not sudoers.exists() or sudoers.read_text() != rule:
            staged = sudoers.with_name(f".{USER}.tmp")
            staged.write_text(rule)
            staged.chmod(0o440)
            _run(["visudo", "-c", "-q", "-f", str(staged)])
            staged.replace(sudoers)


def keygen(path: Path, comment: str) -> str:
    """Make an ed25519 key pair at path; return the public key line."""
    _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)])
    return path.with_suffix(".pub").read_text().strip()


def fingerprint(pub: Path) -> str:
    return _run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)]).split()[1]


# Key-only login for the deploy user, nothing else: shared by every kind of fake host.
SSHD_KEY_ONLY = (
    f"AllowUsers {USER}",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "UsePAM no",
    "PermitRootLogin no",
    "PrintMotd no",
    "LogLevel VERBOSE",
    "Subsystem sftp internal-sftp",
)


def _sshd_config(
    host_dir: Path, address: str, port: int, authorized_keys: Path, extra: tuple[str, ...]
) -> Path:
    config = host_dir / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {address}:{port}",
                f"HostKey {host_dir / 'host_ed25519'}",
                f"PidFile {host_dir / 'sshd.pid'}",
                # One key file for the session, outside ~deploy (shared in loopback mode);
                # it lives under /tmp, which StrictModes would reject.
                f"AuthorizedKeysFile {authorized_keys}",
                "StrictModes no",
                *SSHD_KEY_ONLY,
                *extra,
                "",
            ]
        )
    )
    return config


def _host_root(session: Path, name: str) -> Path:
    root = session / name
    deploy = (int(_run(["id", "-u", USER])), int(_run(["id", "-g", USER])))
    for sub in PRIVATE_DIRS.values():
        (root / sub).mkdir(parents=True)
    os.chown(root / "home", *deploy)
    (root / "sshd").mkdir()
    return root


def _sshd_argv(
    mode: Mode, ns: str | None, name: str, root: Path, config: Path, setup: tuple[str, ...]
) -> list[str]:
    sshd = ["/usr/sbin/sshd", "-D", "-e", "-f", str(config)]
    if mode == "loopback":
        return sshd
    assert ns is not None
    mounts = [f"mount --bind {root / sub} {remote}" for remote, sub in PRIVATE_DIRS.items()]
    script = "; ".join(["set -e", f"hostname {name}", *mounts, *setup, f"exec {shlex.join(sshd)}"])
    unshare = ["unshare", "--uts", "--mount", "--propagation", "private", "sh", "-c", script]
    return ["ip", "netns", "exec", ns, *unshare]


def _choose_mode() -> Mode:
    """WRTEST_SSH_MODE if set, else "netns" where namespaces can be made, else "loopback"."""
    forced = os.environ.get("WRTEST_SSH_MODE", "")
    if forced in ("netns", "loopback"):
        return forced  # type: ignore[return-value]
    if forced:
        raise ValueError(f"WRTEST_SSH_MODE={forced!r}: expected 'netns' or 'loopback'")
    reason = _netns.refusal()
    if reason is None:
        return "netns"
    warnings.warn(f"network namespaces refused ({reason}): fake hosts on 127.0.0.x", stacklevel=2)
    return "loopback"


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        policy.unavailable("root (sshd must log users in as `deploy`)", "run the tests as root")
    for tool in ("/usr/sbin/sshd", "ssh-keygen", "sudo", "visudo", "useradd"):
        if not shutil.which(tool):
            policy.unavailable(f"`{tool}`", INSTALL_HINT)


@dataclass
class _Session:
    """What all hosts of one fake_ssh_hosts() share: a dir, the client key, known_hosts."""

    dir: Path
    mode: Mode
    net: _netns.HostNetwork | None
    extra_sshd_config: tuple[str, ...] = ()
    host_setup: HostSetup = ()

    def setup_for(self, name: str) -> tuple[str, ...]:
        return self.host_setup(name) if callable(self.host_setup) else self.host_setup

    @property
    def key_path(self) -> Path:
        return self.dir / "client_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.dir / "authorized_keys"

    @property
    def known_hosts(self) -> Path:
        return self.dir / "known_hosts"


def _start_host(session: _Session, index: int, name: str) -> SshHost:
    root = _host_root(session.dir, name)
    net = session.net
    ns = net.add_host(index, name) if net else None
    address = net.address(index) if net else f"127.0.0.{2 + index}"
    port = 22 if net else free_port(address)
    keygen(root / "sshd" / "host_ed25519", f"wrtest-{name}")
    config = _sshd_config(
        root / "sshd", address, port, session.authorized_keys, session.extra_sshd_config
    )
    argv = _sshd_argv(session.mode, ns, name, root, config, session.setup_for(name))
    host = SshHost(
        name=name,
        address=address,
        port=port,
        user=USER,
        key_path=session.key_path,
        known_hosts_path=session.known_hosts,
        host_key_fingerprint=fingerprint(root / "sshd" / "host_ed25519.pub"),
        root_dir=root,
        mode=session.mode,
        namespace=ns,
        gateway=net.gateway if net else "127.0.0.1",
        sshd=ManagedProcess(argv, root / "sshd" / "sshd.log", name=f"sshd of {name}"),
    )
    host.sshd.start()
    return host


def known_hosts_line(address: str, port: int, host_pub_key: Path) -> str:
    """The known_hosts entry for a host key served on address:port."""
    key = host_pub_key.read_text().split()[:2]
    target = address if port == 22 else f"[{address}]:{port}"
    return f"{target} {' '.join(key)}\n"


def _known_hosts_line(host: SshHost) -> str:
    return known_hosts_line(host.address, host.port, host.root_dir / "sshd" / "host_ed25519.pub")


@contextlib.contextmanager
def fake_ssh_hosts(
    names: tuple[str, ...] = HOST_NAMES,
    mode: Mode | None = None,
    extra_sshd_config: tuple[str, ...] = (),
    host_setup: HostSetup = (),
) -> Iterator[list[SshHost]]:
    """Start one sshd per name and yield the hosts once all accept connections; everything
    (processes, namespaces, links, files) is removed on exit. `extra_sshd_config` lines are
    added to every host's sshd_config (e.g. `SetEnv DOCKER_HOST=...`); `host_setup` shell
    commands (or a function of the host name giving them) run in each namespaced host's
    private mount namespace before sshd starts."""
    _check_prerequisites()
    ensure_deploy_user()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    mode = mode or _choose_mode()
    if mode == "netns":
        _netns.remove_stale()
    workdir = _stale.owned_temp_dir(SESSION_PREFIX)  # also ends sshd of crashed runs
    workdir.chmod(0o755)  # sshd reads authorized_keys as `deploy`
    hosts: list[SshHost] = []
    session = _Session(workdir, mode, None, extra_sshd_config, host_setup)
    try:
        if mode == "netns":
            session.net = _netns.create_network()
        session.authorized_keys.write_text(keygen(session.key_path, "wrtest-client") + "\n")
        session.authorized_keys.chmod(0o644)
        for index, name in enumerate(names):
            hosts.append(_start_host(session, index, name))
        session.known_hosts.write_text("".join(_known_hosts_line(h) for h in hosts))
        for host in hosts:
            host.sshd.wait_ready(host.port, READY_DEADLINE_S, host.address)
        yield hosts
    finally:
        for host in hosts:
            host.sshd.stop(grace_s=3)
        if session.net is not None:
            session.net.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def ssh_hosts() -> Iterator[list[SshHost]]:
    """Two fake hosts (node-a, node-b) for the session; see SshHost for what each offers."""
    with fake_ssh_hosts() as hosts:
        yield hosts


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses `ssh_hosts` with `ssh`, so `-m "not ssh"` deselects them."""
    for item in items:
        if "ssh_hosts" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.ssh)

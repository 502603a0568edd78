"""A Docker daemon the tests start by hand (own socket, data-root, exec-root, no iptables),
and fake SSH hosts whose `deploy` user drives it with the docker CLI."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra import _cgroups, _machine_state, _netns, _stale, policy
from tests.infra.process import ManagedProcess, ProcessNotReady, StopWaiting, wait_until
from tests.infra.ssh_hosts import USER, HostAccess, SshHost, ensure_deploy_user, fake_ssh_hosts

SESSION_PREFIX = "wrtest-docker-"
READY_DEADLINE_S = 30.0
BRIDGE = "docker0"
INSTALL_HINT = (
    "run `bash scripts/install-docker-deps.sh` (apt-get install docker.io docker-compose)"
)


@dataclass
class DockerDaemon:
    """A running dockerd. `env()` is what a docker client needs (DOCKER_HOST, and
    DOCKER_BUILDKIT=0: only the legacy builder works without a registry); `docker()` runs
    the CLI against it. Ports published with `-p 127.0.0.1:PORT:...` are on this machine."""

    dir: Path
    process: ManagedProcess
    made_bridge: bool = False

    @property
    def socket_path(self) -> Path:
        return self.dir / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket_path}"

    def env(self) -> dict[str, str]:
        return {"DOCKER_HOST": self.host, "DOCKER_BUILDKIT": "0"}

    def docker(
        self, *args: str, timeout_s: float = 300.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """`docker ARGS` against this daemon; raises with the CLI's stderr on failure."""
        argv = [docker_cli(), *args]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env={**os.environ, **self.env()},
        )
        if check and done.returncode != 0:
            raise RuntimeError(
                f"`docker {' '.join(args)}` failed ({done.returncode}): {done.stderr}"
            )
        return done

    def ping(self) -> bool:
        """True when the daemon answers `GET /_ping` on its socket."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(self.socket_path))
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            reply = sock.recv(4096)
        return reply.startswith(b"HTTP/1.") and reply.rstrip().endswith(b"OK")


def docker_cli() -> str:
    found = shutil.which("docker")
    if found is None:
        policy.unavailable("the docker CLI", INSTALL_HINT)
    return found


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        policy.unavailable("root (dockerd runs as root)", "run the tests as root")
    for tool in ("dockerd", "containerd", "runc", "docker-proxy"):
        if shutil.which(tool) is None:
            policy.unavailable(f"`{tool}`", INSTALL_HINT)
    docker_cli()


def _host_view(host: HostAccess, workdir: Path) -> list[str]:
    """Shell commands that give a daemon the view of `host` its sshd has: the host's name
    (containers with host networking take it) and its private dirs (bind-mount sources),
    plus an /etc/docker of its own (the daemon's identity key: each host's ID differs)."""
    own = {remote: host.root_dir / sub for remote, sub in host.private_dirs.items()}
    own["/etc/docker"] = workdir / "etc-docker"
    own["/etc/docker"].mkdir(mode=0o700, exist_ok=True)
    binds = [f"mount --bind {shlex.quote(str(src))} {remote}" for remote, src in own.items()]
    # dockerd would make /etc/docker itself; docker.io ships it.
    return [f"hostname {shlex.quote(host.name)}", "mkdir -p /etc/docker", *binds]


def _dockerd_argv(
    workdir: Path, host: HostAccess | None = None, data_in_memory: bool = False
) -> list[str]:
    # dockerd and its containerd keep some state at fixed places in /run (plugins dir, shim
    # sockets): give them a private /run in their own mount namespace, where the layers they
    # mount also stay (they vanish with the daemon's last process).
    setup = [
        "mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run",
        *(_host_view(host, workdir) if host else []),
    ]
    if data_in_memory:
        # Images and containers in a tmpfs of the daemon's namespace: importing is faster
        # and nothing is left to delete (deleting an image's files from disk takes seconds).
        data = shlex.quote(str(workdir / "data"))
        setup += [f"mkdir -p {data}", f"mount -t tmpfs -o mode=710 tmpfs {data}"]
    return [
        "unshare",
        "--mount",
        *(["--uts"] if host else []),
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        " && ".join([*setup, 'exec "$@"']),
        "sh",
        "dockerd",
        # Containers' cgroups go under <dockerd's cgroup>/<workdir name>: clean_up finds
        # every container process there, also after a crash.
        "--cgroup-parent",
        workdir.name,
        "--host",
        f"unix://{workdir / 'docker.sock'}",
        "--data-root",
        str(workdir / "data"),
        "--exec-root",
        str(workdir / "exec"),
        "--pidfile",
        str(workdir / "dockerd.pid"),
        "--group",
        "docker",
        # Leave this machine's firewall and sysctls alone: published ports go through
        # docker-proxy, which needs neither.
        "--iptables=false",
        "--ip-forward=false",
        "--ip-masq=false",
        "--storage-driver",
        "overlay2",
    ]


def mounts_under(path: Path, pid: int | str = "self") -> list[str]:
    """Mount points at or below path in the mount namespace of pid, deepest first."""
    points = []
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == str(path) or point.startswith(f"{path}/"):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def pids_mentioning(path: Path) -> list[int]:
    """Processes whose command line names path (containerd and its shims, after a crash)."""
    needle = str(path).encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            with contextlib.suppress(OSError):
                if needle in (proc / "cmdline").read_bytes():
                    found.append(int(proc.name))
    return found


def _dockerd_running() -> bool:
    for comm in Path("/proc").glob("[0-9]*/comm"):
        with contextlib.suppress(OSError):
            if comm.read_text().strip() == "dockerd" and not _stale.process_gone(
                int(comm.parent.name)
            ):
                return True
    return False


def clean_up(workdir: Path, made_bridge: bool) -> None:
    """Kill what is left of a daemon in workdir, unmount its layers, delete the bridge it
    made and the dir. Used on teardown and for the dirs of crashed runs."""
    pids = pids_mentioning(workdir)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    wait_until(lambda: all(map(_stale.process_gone, pids)), 10.0, f"the processes of {workdir}")
    # Container processes name nothing of workdir; they are in its cgroups (--cgroup-parent).
    _cgroups.remove(
        [p / workdir.name for p in _cgroups.own_parents() if (p / workdir.name).exists()]
    )
    for point in mounts_under(workdir):
        subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
    # Another test run's daemon may be using the bridge we made: then it is theirs to remove.
    if made_bridge and BRIDGE in _netns.links() and not _dockerd_running():
        _netns.delete_link(BRIDGE)
        if BRIDGE in _netns.links():
            raise RuntimeError(f"could not delete the {BRIDGE} bridge this daemon made")
    if not mounts_under(workdir):  # never delete through a mount that would not go away
        # rm is several times faster than shutil.rmtree on an image's many small files.
        rm = ["rm", "-rf", "--one-file-system", str(workdir)]
        subprocess.run(rm, capture_output=True, timeout=120)


def remove_stale() -> None:
    """Clean up the daemons of test runs that are gone (processes, mounts, bridge, dir)."""
    _netns.remove_stale()  # the namespaces of own_network daemons
    for path in Path("/tmp").glob(f"{SESSION_PREFIX}*"):
        owner = path.name.removeprefix(SESSION_PREFIX).split("-", 1)[0]
        if owner.isdigit() and not _stale.pid_alive(int(owner)):
            clean_up(path, made_bridge=(path / "made-bridge").exists())


def daemon_workdir() -> Path:
    """A fresh dir for one daemon (socket, data-root, exec-root, log), after removing what
    crashed runs left. Make it ahead to know the socket path before the daemon starts."""
    _check_prerequisites()
    remove_stale()
    workdir = _stale.owned_temp_dir(SESSION_PREFIX)
    workdir.chmod(0o755)  # the deploy user of docker hosts reaches the socket through it
    return workdir


@contextlib.contextmanager
def docker_daemon_process(
    own_network: bool = False,
    in_host: HostAccess | None = None,
    workdir: Path | None = None,
    data_in_memory: bool = False,
) -> Iterator[DockerDaemon]:
    """Start dockerd in a fresh temp dir (or `workdir`, from daemon_workdir()); on exit
    remove its containers, stop it, and clean up. `own_network=True` runs it in a network
    namespace of its own (its docker0 and ports stay in there): for a second daemon next to
    the session's, which must not share docker0 (a daemon resets the default bridge at
    start-up). `in_host` (a namespaced fake host) runs it in that host's network namespace, with
    the host's name and private dirs, like the host's own daemon; the host stays up.
    `data_in_memory` keeps its data-root (images, containers) in a tmpfs of its own."""
    if in_host is not None and in_host.namespace is None:
        raise ValueError(f"{in_host.name} is a {in_host.mode} host: its daemon needs a netns")
    workdir = workdir or daemon_workdir()
    ns = _netns.create_namespace() if own_network and in_host is None else None
    netns = in_host.namespace if in_host is not None else ns
    made_bridge = netns is None and BRIDGE not in _netns.links()
    if made_bridge:
        (workdir / "made-bridge").touch()  # so a later run removes it if this one crashes
    argv = _dockerd_argv(workdir, in_host, data_in_memory)
    daemon = DockerDaemon(
        workdir,
        ManagedProcess(
            # nsenter, not `ip netns exec`: that remounts /sys, hiding the cgroup mounts.
            ["nsenter", f"--net=/run/netns/{netns}", *argv] if netns else argv,
            workdir / "dockerd.log",
            name="dockerd",
        ),
        made_bridge,
    )
    try:
        daemon.process.start()
        _wait_ready(daemon)
        yield daemon
    finally:
        if daemon.process.running:
            ids = daemon.docker("ps", "-aq", check=False).stdout.split()
            if ids:
                daemon.docker("rm", "-f", *ids, check=False)
        daemon.process.stop(grace_s=15)
        clean_up(workdir, made_bridge)
        if ns is not None:
            _netns.delete_namespace(ns)


def _wait_ready(daemon: DockerDaemon) -> None:
    def ready() -> bool:
        if not daemon.process.running:
            raise StopWaiting(f"dockerd exited with {daemon.process.returncode}")
        return daemon.socket_path.exists() and daemon.ping()

    try:
        wait_until(ready, READY_DEADLINE_S, "dockerd to answer /_ping")
    except (StopWaiting, TimeoutError) as exc:
        raise ProcessNotReady(f"{exc}\n--- dockerd log ---\n{daemon.process.log_tail()}") from None


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[DockerDaemon]:
    """One dockerd for the session (see DockerDaemon)."""
    with docker_daemon_process() as daemon:
        yield daemon


def ensure_deploy_in_docker_group() -> None:
    """Let `deploy` use the daemon socket (group `docker`), as on a real Docker host.
    Machine set-up like the account itself: it stays. Makes the account (and the group,
    which the docker.io package normally brings) first, whatever fixture ran before."""
    ensure_deploy_user()
    if subprocess.run(["getent", "group", "docker"], capture_output=True).returncode != 0:
        _machine_state.record_created("group", "docker")
        subprocess.run(["groupadd", "--system", "docker"], check=True, timeout=30)
    groups = subprocess.run(["id", "-nG", USER], capture_output=True, text=True).stdout.split()
    if "docker" not in groups:
        subprocess.run(["usermod", "-aG", "docker", USER], check=True, timeout=30)


@contextlib.contextmanager
def fake_docker_hosts(
    daemon: DockerDaemon, names: Sequence[str] = ("node-a", "node-b")
) -> Iterator[list[SshHost]]:
    """Fake SSH hosts that look like Docker hosts for `daemon`: its socket is the host's
    /var/run/docker.sock (namespaced hosts: a private /run), every SSH session gets
    DOCKER_HOST (and DOCKER_BUILDKIT=0), and `deploy` is in group `docker`, so the docker
    CLI, docker-compose and SDKs that dial /var/run/docker.sock over SSH all reach it. The
    daemon is shared: images and containers are seen by every host."""
    ensure_deploy_in_docker_group()
    env = " ".join(f"{key}={value}" for key, value in daemon.env().items())
    setup = (
        # /run is this machine's own dir here: give the host a private one, with what sshd
        # needs (its privilege separation dir) and the daemon's socket at the usual place.
        "mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run",
        "mkdir -p /run/sshd /run/lock",
        "touch /run/docker.sock",
        f"mount --bind {shlex.quote(str(daemon.socket_path))} /run/docker.sock",
    )
    with fake_ssh_hosts(
        tuple(names), extra_sshd_config=(f"SetEnv {env}",), host_setup=setup
    ) as hosts:
        yield hosts


@pytest.fixture(scope="session")
def docker_hosts(docker_daemon: DockerDaemon) -> Iterator[list[SshHost]]:
    """Two fake SSH hosts (node-a, node-b) that drive the session's docker_daemon."""
    with fake_docker_hosts(docker_daemon) as hosts:
        yield hosts


DAEMON_GROUP = "docker-daemon"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "docker: needs the test Docker daemon")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the daemon (directly or through hosts/image) `docker`,
    and those that use docker_hosts also `ssh`."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & {"docker_daemon", "docker_hosts", "docker_base_image"}:
            item.add_marker(pytest.mark.docker)
            # One worker (pytest-xdist) runs them all: this daemon owns the machine's docker0.
            item.add_marker(pytest.mark.xdist_group(DAEMON_GROUP))
        if "docker_hosts" in names:
            item.add_marker(pytest.mark.ssh)

"""Fake Docker hosts that each run their own dockerd inside their own network namespace, so
containers with host networking listen at the host's address, as on a real Docker host."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path

import pytest

from tests.infra import _netns, _stale, policy, ssh_hosts
from tests.infra.docker_daemon import (
    DockerDaemon,
    daemon_workdir,
    docker_daemon_process,
    ensure_deploy_in_docker_group,
    mounts_under,
    remove_stale,
)
from tests.infra.docker_image import (
    IMAGE_REPO,
    debian_mirror,
    image_key,
    import_base_image,
    rootfs_tarball,
)
from tests.infra.ssh_hosts import SshHost, fake_ssh_hosts

HOST_NAMES = ("node-a", "node-b")
DOCKER_SOCKET = "/var/run/docker.sock"  # what the docker CLI and SDKs dial by default
SESSION_ENV = {"DOCKER_HOST": f"unix://{DOCKER_SOCKET}", "DOCKER_BUILDKIT": "0"}
FIXTURES = {"isolated_docker_hosts"}


@dataclass
class IsolatedDockerHost(SshHost):
    """A fake SSH host with its own dockerd: `daemon` drives it from this machine (its
    containers, ports and docker0 are in the host's namespace), `base_image` names the
    Debian + Python image imported into it (empty when the hosts were made without it)."""

    daemon: DockerDaemon = field(repr=False, kw_only=True)
    base_image: str = field(default="", kw_only=True)


def base_image_name() -> str:
    """`wruntime-test-base:<key>`: the base image's name in every isolated host's daemon."""
    return f"{IMAGE_REPO}:{image_key(debian_mirror())}"


def _host_setup(workdirs: dict[str, Path]) -> ssh_hosts.HostSetup:
    """Per host, before its sshd starts: a private /run holding what sshd needs and
    /run/docker.sock, a link to the socket its daemon will make (it does not exist yet)."""

    def setup(name: str) -> tuple[str, ...]:
        socket = shlex.quote(str(workdirs[name] / "docker.sock"))
        return (
            "mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run",
            "mkdir -p /run/sshd /run/lock",
            f"ln -s {socket} /run/docker.sock",
        )

    return setup


def _check_prerequisites() -> None:
    if os.geteuid() != 0:
        policy.unavailable("root (dockerd and namespaces)", "run the tests as root")
    reason = _netns.refusal()
    if reason is not None:
        policy.unavailable(
            f"network namespaces ({reason})", "run the tests as root on a Linux host"
        )


def _as_docker_host(host: SshHost, daemon: DockerDaemon) -> IsolatedDockerHost:
    values = {f.name: getattr(host, f.name) for f in fields(host)}
    return IsolatedDockerHost(**values, daemon=daemon)


@contextlib.contextmanager
def fake_isolated_docker_hosts(
    names: Sequence[str] = HOST_NAMES, cache: Path | None = None
) -> Iterator[list[IsolatedDockerHost]]:
    """Namespaced fake SSH hosts, each with its own dockerd in its network namespace (own
    docker0, data-root, socket; the host's name and private /opt, /home/deploy), reached on
    the host at /var/run/docker.sock, with DOCKER_HOST and DOCKER_BUILDKIT=0 set for every
    SSH session and `deploy` in group docker. With `cache` (the wruntime cache dir) the base
    image is imported into every daemon (`host.base_image`). Everything goes on exit."""
    _check_prerequisites()
    env = " ".join(f"{key}={value}" for key, value in SESSION_ENV.items())
    workdirs: dict[str, Path] = {}
    try:
        for name in names:
            workdirs[name] = daemon_workdir()  # checks for dockerd, cleans up crashed runs
        ensure_deploy_in_docker_group()
        with (
            fake_ssh_hosts(
                tuple(names),
                mode="netns",
                extra_sshd_config=(f"SetEnv {env}",),
                host_setup=_host_setup(workdirs),
            ) as plain,
            _daemons_in(plain, workdirs) as daemons,
        ):
            hosts = [_as_docker_host(h, d) for h, d in zip(plain, daemons, strict=True)]
            if cache is not None:
                _import_base_image(hosts, cache)
            yield hosts
    finally:
        for workdir in workdirs.values():  # left when its daemon never started
            if workdir.exists() and not mounts_under(workdir):
                shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _daemons_in(hosts: list[SshHost], workdirs: dict[str, Path]) -> Iterator[list[DockerDaemon]]:
    """One daemon per host, started and stopped all at once (stopping one takes seconds)."""
    managers = [
        docker_daemon_process(in_host=h, workdir=workdirs[h.name], data_in_memory=True)
        for h in hosts
    ]
    with ThreadPoolExecutor(max_workers=len(managers) or 1) as pool:
        starts = [pool.submit(manager.__enter__) for manager in managers]
        started = [m for m, f in zip(managers, starts, strict=True) if f.exception() is None]
        try:
            yield [start.result() for start in starts]  # the first start-up error, if any
        finally:
            stops = [pool.submit(m.__exit__, None, None, None) for m in started]
            for stop in stops:
                stop.result()


def _import_base_image(hosts: list[IsolatedDockerHost], cache: Path) -> None:
    """Import the cached rootfs into every host's daemon at once (each takes seconds)."""
    tarball = rootfs_tarball(cache, debian_mirror())
    name = base_image_name()
    with ThreadPoolExecutor(max_workers=len(hosts) or 1) as pool:
        list(pool.map(lambda host: import_base_image(host.daemon, tarball, name), hosts))
    for host in hosts:
        host.base_image = name


def remove_stale_isolated_hosts() -> None:
    """What a crashed run of these fixtures left: namespaces (with every process in them),
    daemons (shims, container cgroups, mounts, dirs) and the sshd dirs."""
    remove_stale()
    _stale.remove_stale_dirs(ssh_hosts.SESSION_PREFIX)


@pytest.fixture(scope="session")
def isolated_docker_hosts(wruntime_cache: Path) -> Iterator[list[IsolatedDockerHost]]:
    """Two Docker hosts (node-a, node-b), each with its own daemon and the base image."""
    with fake_isolated_docker_hosts(HOST_NAMES, cache=wruntime_cache) as hosts:
        yield hosts


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses isolated Docker hosts `docker` and `ssh`."""
    for item in items:
        if FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)
            item.add_marker(pytest.mark.ssh)

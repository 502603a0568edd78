"""Docker hosts with a daemon of their own: host-networked containers listen in their host's
namespace, hosts don't see each other's containers, and nothing outlives the fixture."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.infra import _netns, _stale
from tests.infra.docker_daemon import mounts_under, pids_mentioning
from tests.infra.isolated_docker_hosts import (
    IsolatedDockerHost,
    fake_isolated_docker_hosts,
    remove_stale_isolated_hosts,
)
from tests.infra.process import ManagedProcess, StopWaiting, free_port, wait_until
from tests.integration.infra.test_docker import _sleep_image

COMPOSE_FILE = """\
version: "3"
services:
  web:
    image: {image}
    network_mode: host
    stop_signal: SIGINT  # python as PID 1 ignores SIGTERM: down would wait 10 s
    volumes: ["/home/deploy/web/www:/w:ro"]
    command: ["python3", "-m", "http.server", "--directory", "/w", "{port}"]
"""


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        body: bytes = response.read()
    return body.decode()


def _refused(url: str) -> bool:
    try:
        _get(url)
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)
    return False


def _fetch_on(host: IsolatedDockerHost, url: str) -> str:
    """GET url from a shell on host (over SSH), with the host's python3."""
    code = f"import urllib.request as u; print(u.urlopen('{url}', timeout=2).read().decode())"
    with host.connect() as conn:
        return str(conn.run(f'python3 -c "{code}"', hide=True).stdout).strip()


def _container_names(host: IsolatedDockerHost) -> set[str]:
    with host.connect() as conn:
        out = conn.run("docker ps -a --format '{{.Names}}'", hide=True).stdout
    return set(out.split())


def test_each_host_has_its_own_daemon_at_the_default_socket(
    isolated_docker_hosts: list[IsolatedDockerHost],
) -> None:
    seen = {}
    for host in isolated_docker_hosts:
        with host.connect() as conn:
            assert conn.run("echo $DOCKER_HOST", hide=True).stdout.strip() == (
                "unix:///var/run/docker.sock"
            )
            # Without DOCKER_HOST the CLI dials /var/run/docker.sock, as on a real host.
            info = conn.run("env -u DOCKER_HOST docker info --format '{{json .}}'", hide=True)
            bridge = conn.run("ip -o -4 addr show docker0", hide=True).stdout
            images = conn.run("docker images --format '{{.Repository}}:{{.Tag}}'", hide=True)
        facts = json.loads(info.stdout)
        assert facts["Name"] == host.name
        assert facts["DockerRootDir"] == str(host.daemon.dir / "data")
        assert "172.17.0.1/16" in bridge  # its docker0, inside the host's namespace
        assert host.base_image in images.stdout.split()
        seen[host.name] = facts["ID"]
    assert len(set(seen.values())) == len(isolated_docker_hosts), seen


def test_host_network_containers_listen_at_their_hosts_address(
    isolated_docker_hosts: list[IsolatedDockerHost],
) -> None:
    """node-a runs a host-networked web server with `docker run`, node-b one on the SAME
    port with docker-compose (v1) serving a dir of the host's private /home/deploy: each
    answers on its host only, not on this machine, and neither daemon sees the other's."""
    node_a, node_b = isolated_docker_hosts
    port = free_port()  # free on this machine: nothing here may answer on it
    name = f"web-{os.getpid()}"
    serve = (
        f"mkdir -p /w && echo {node_a.name} > /w/name && exec python3 -m http.server -d /w {port}"
    )
    compose = COMPOSE_FILE.format(image=node_b.base_image, port=port)
    with node_a.connect() as conn_a, node_b.connect() as conn_b:
        conn_a.run(
            f"docker run -d --name {name} --network host {node_a.base_image} sh -c '{serve}'",
            hide=True,
        )
        conn_b.run("mkdir -p web/www && echo node-b-compose > web/www/name", hide=True)
        conn_b.put(io.BytesIO(compose.encode()), "web/docker-compose.yml")
        conn_b.run("cd web && docker-compose up -d", hide=True)
        try:
            at_a, at_b = (f"http://{h.address}:{port}/name" for h in (node_a, node_b))
            # (2) this machine reaches each container at its host's address
            assert wait_until(lambda: _get(at_a), 30.0, "node-a's container") == "node-a\n"
            assert wait_until(lambda: _get(at_b), 30.0, "node-b's compose") == "node-b-compose\n"
            # (1) a health check run on the host itself sees it on 127.0.0.1
            assert _fetch_on(node_a, f"http://127.0.0.1:{port}/name") == "node-a"
            assert _fetch_on(node_b, f"http://127.0.0.1:{port}/name") == "node-b-compose"
            # ... and this machine's own namespace has nothing on that port
            assert _refused(f"http://127.0.0.1:{port}/name")
            # a peer's container (host networking too) reaches it at the host's address
            fetch = f"import urllib.request as u; print(u.urlopen('{at_b}').read().decode())"
            peer = conn_a.run(
                f'docker run --rm --network host {node_a.base_image} python3 -c "{fetch}"',
                hide=True,
            )
            assert peer.stdout.strip() == "node-b-compose"
            # (3) each daemon sees its own containers only
            assert name in _container_names(node_a)
            assert name not in _container_names(node_b)
            assert not any(n.startswith("web_web") for n in _container_names(node_a))
            # (4) docker-compose v1 manages node-b's service over SSH
            assert conn_b.run("cd web && docker-compose ps -q", hide=True).stdout.strip()
            conn_b.run("cd web && docker-compose down", hide=True)
            wait_until(lambda: _refused(at_b), 30.0, "node-b's port to close after down")
            assert _get(at_a) == "node-a\n"
        finally:
            conn_a.run(f"docker rm -f {name}", hide=True, warn=True)
            conn_b.run("cd web && docker-compose rm -fs; cd && rm -r web", hide=True, warn=True)


def _links_of(ns: str) -> list[str]:
    """The bridge and veth links of the network namespace ns belongs to (`wrtest-<tag>-<i>`)."""
    tag = ns.removeprefix("wrtest-").rsplit("-", 1)[0]
    return [link for link in _netns.links() if link.startswith((f"wrb{tag}", f"wrv{tag}"))]


def _etc_docker_digest() -> str:
    key = Path("/etc/docker/key.json")
    return hashlib.sha256(key.read_bytes()).hexdigest() if key.exists() else ""


@pytest.mark.docker
@pytest.mark.ssh
def test_teardown_leaves_nothing_behind(tmp_path: Path) -> None:
    """A host with a running host-networked container: after exit no process, namespace,
    mount or dir of it is left, and this machine's /etc/docker is untouched."""
    etc_docker = _etc_docker_digest()
    with fake_isolated_docker_hosts(("solo",)) as (host,):
        image = _sleep_image(host.daemon, tmp_path)
        cid = host.daemon.docker("run", "-d", "--network", "host", image, "/bin/sleep", "300")
        inspect = host.daemon.docker("inspect", "-f", "{{.State.Pid}}", cid.stdout.strip())
        pids = [host.daemon.process.pid, host.sshd.pid, *pids_mentioning(host.daemon.dir)]
        pids.append(int(inspect.stdout))
        assert len(pids) >= 5, "dockerd, sshd, containerd, the container's shim and sleep"
        dirs, ns = [host.daemon.dir, host.root_dir], str(host.namespace)
        assert ns in _netns.namespaces()
    assert ns not in _netns.namespaces()
    assert not _links_of(ns)
    for path in dirs:
        assert not path.exists(), path
        assert not mounts_under(path)
    for pid in pids:
        assert _stale.process_gone(pid), f"pid {pid} outlived the host"
    assert _etc_docker_digest() == etc_docker


CRASHING_RUN = """
import json, sys, time
from pathlib import Path
from tests.infra.docker_daemon import pids_mentioning
from tests.infra.isolated_docker_hosts import fake_isolated_docker_hosts
from tests.integration.infra.test_docker import _sleep_image

def test_then_get_killed(tmp_path):
    with fake_isolated_docker_hosts(("solo",)) as (host,):
        image = _sleep_image(host.daemon, tmp_path)
        cid = host.daemon.docker("run", "-d", "--network", "host", image, "/bin/sleep", "300")
        inspect = host.daemon.docker("inspect", "-f", "{{{{.State.Pid}}}}", cid.stdout.strip())
        pids = [host.daemon.process.pid, host.sshd.pid, *pids_mentioning(host.daemon.dir)]
        pids.append(int(inspect.stdout))
        state = {{"dirs": [str(host.daemon.dir), str(host.root_dir)], "ns": host.namespace,
                  "pids": pids}}
        Path(__file__).with_name("state.json").write_text(json.dumps(state))
        time.sleep(300)
"""


@pytest.mark.docker
@pytest.mark.ssh
def test_a_crashed_runs_hosts_are_removed_by_the_next(tmp_path: Path) -> None:
    (tmp_path / "test_crash.py").write_text(CRASHING_RUN.format())
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull]
    inner = ManagedProcess(
        [*argv, "--rootdir", str(tmp_path), str(tmp_path / "test_crash.py")],
        tmp_path / "inner.log",
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[3])},
        cwd=tmp_path,
        stop_signal=signal.SIGKILL,  # a crash: no teardown runs
    )
    state_file = tmp_path / "state.json"

    def started() -> bool:
        if not inner.running:
            raise StopWaiting(f"the inner run exited:\n{inner.log_tail()}")
        return state_file.exists()

    with inner:
        wait_until(started, 90, "the inner run to start its host")
        state = json.loads(state_file.read_text())
    assert all(map(_stale.pid_alive, state["pids"]))
    assert state["ns"] in _netns.namespaces()

    remove_stale_isolated_hosts()

    assert state["ns"] not in _netns.namespaces()
    assert not _links_of(state["ns"])
    for path in map(Path, state["dirs"]):
        assert not path.exists(), f"{path} of the crashed run is still there"
    for pid in state["pids"]:
        assert _stale.process_gone(pid), f"pid {pid} of the crashed run still runs"


def test_host_network_containers_reach_a_service_on_the_gateway(
    isolated_docker_hosts: list[IsolatedDockerHost], tmp_path: Path
) -> None:
    """Where a deploy test binds its manager (host.gateway), a node's containers reach it."""
    host = isolated_docker_hosts[0]
    (tmp_path / "hello.txt").write_text("from the test machine")
    port = free_port(host.gateway)
    argv = [sys.executable, "-m", "http.server", "--bind", host.gateway, str(port)]
    with ManagedProcess(argv, tmp_path / "http.log", cwd=tmp_path) as server:
        server.wait_ready(port, deadline_s=10, host=host.gateway)
        url = f"http://{host.gateway}:{port}/hello.txt"
        code = f"import urllib.request as u; print(u.urlopen('{url}', timeout=5).read().decode())"
        with host.connect() as conn:
            out = conn.run(
                f'docker run --rm --network host {host.base_image} python3 -c "{code}"', hide=True
            )
    assert out.stdout.strip() == "from the test machine"


def test_deploy_builds_an_image_on_its_host_only(
    isolated_docker_hosts: list[IsolatedDockerHost],
) -> None:
    """The legacy builder (RUN steps run on the host's own docker0) works over SSH, and the
    image lands in that host's daemon only."""
    node_a, node_b = isolated_docker_hosts
    tag = f"wrtest-built:{os.getpid()}"
    dockerfile = f"FROM {node_a.base_image}\nCOPY note /note\nRUN cat /note > /built\n"
    with node_a.connect() as conn:
        conn.run("mkdir -p ctx && echo built-on-node-a > ctx/note", hide=True)
        conn.put(io.BytesIO(dockerfile.encode()), "ctx/Dockerfile")
        try:
            conn.run(f"docker build -q -t {tag} ctx", hide=True)
            out = conn.run(f"docker run --rm {tag} cat /built", hide=True).stdout
        finally:
            conn.run("rm -r ctx", hide=True)
    assert out.strip() == "built-on-node-a"
    assert node_b.daemon.docker("image", "inspect", tag, check=False).returncode != 0
    node_a.daemon.docker("rmi", tag)

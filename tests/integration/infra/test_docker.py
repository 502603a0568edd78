"""The test Docker daemon, the locally built Python base image, and fake hosts that build and
run images on that daemon over SSH."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.infra import _stale
from tests.infra.docker_daemon import (
    DockerDaemon,
    docker_daemon_process,
    mounts_under,
    pids_mentioning,
    remove_stale,
)
from tests.infra.process import ManagedProcess, free_port, wait_until
from tests.infra.ssh_hosts import SshHost

HELLO_DOCKERFILE = """\
FROM {image}
COPY index.html /srv/index.html
CMD ["python3", "-m", "http.server", "--directory", "/srv", "8000"]
"""


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        body: bytes = response.read()
    return body.decode()


def test_daemon_keeps_its_state_in_its_own_dirs(docker_daemon: DockerDaemon) -> None:
    info = json.loads(docker_daemon.docker("info", "--format", "{{json .}}").stdout)
    assert info["DockerRootDir"] == str(docker_daemon.dir / "data")
    assert info["Driver"] == "overlay2"
    assert docker_daemon.socket_path.is_socket()


def test_base_image_has_python_3_11_with_venv(
    docker_daemon: DockerDaemon, docker_base_image: str
) -> None:
    code = "import sys, venv; print('%d.%d' % sys.version_info[:2])"
    out = docker_daemon.docker("run", "--rm", docker_base_image, "python3", "-c", code)
    assert out.stdout.strip() == "3.11"


def test_legacy_build_from_the_base_image_serves_on_a_published_port(
    docker_daemon: DockerDaemon, docker_base_image: str, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(HELLO_DOCKERFILE.format(image=docker_base_image))
    (tmp_path / "index.html").write_text("hello from a container\n")
    tag = f"wrtest-hello:{os.getpid()}"
    built = docker_daemon.docker("build", "-t", tag, str(tmp_path))
    assert "Successfully tagged" in built.stdout  # the legacy builder's last line
    port = free_port()
    name = f"wrtest-hello-{os.getpid()}"
    docker_daemon.docker("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", tag)
    try:
        url = f"http://127.0.0.1:{port}/index.html"
        assert wait_until(lambda: _get(url), 20.0, "the container to serve") == (
            "hello from a container\n"
        )
    finally:
        docker_daemon.docker("rm", "-f", name)


def test_deploy_user_on_a_docker_host_builds_and_runs_over_ssh(
    docker_hosts: list[SshHost], docker_daemon: DockerDaemon, docker_base_image: str
) -> None:
    host = docker_hosts[0]
    tag = f"wrtest-ssh-built:{os.getpid()}"
    dockerfile = f"FROM {docker_base_image}\nRUN echo built-on-{host.name} > /built\n"
    with host.connect() as conn:
        assert conn.run("echo $DOCKER_HOST", hide=True).stdout.strip() == docker_daemon.host
        conn.run("mkdir -p ctx", hide=True)
        conn.put(io.BytesIO(dockerfile.encode()), "ctx/Dockerfile")
        conn.run(f"docker build -q -t {tag} ctx", hide=True)
        out = conn.run(f"docker run --rm {tag} cat /built", hide=True).stdout
        conn.run("rm -r ctx", hide=True)
        compose = conn.run("docker-compose version --short", hide=True, warn=True)
        if host.mode == "netns":
            # Without DOCKER_HOST the CLI dials /var/run/docker.sock, as on a real host.
            default = conn.run("env -u DOCKER_HOST docker images -q " + tag, hide=True)
            assert default.stdout.strip()
    assert out.strip() == f"built-on-{host.name}"
    # The image is on the shared daemon: this machine sees it too.
    assert docker_daemon.docker("image", "inspect", tag, check=False).returncode == 0
    assert compose.ok, f"docker-compose on the host: {compose.stderr}"


def _sleep_image(daemon: DockerDaemon, workdir: Path) -> str:
    """A tiny image holding only this machine's `sleep` and the libraries it loads."""
    libs = re.findall(
        r"(/\S+) \(0x",
        subprocess.run(["ldd", "/bin/sleep"], capture_output=True, text=True, check=True).stdout,
    )
    tarball = workdir / "sleep.tar"
    members = [p.lstrip("/") for p in ("/bin/sleep", *libs)]
    subprocess.run(["tar", "-C", "/", "-chf", str(tarball), *members], check=True)
    daemon.docker("import", str(tarball), "wrtest-sleep:1")
    return "wrtest-sleep:1"


def _docker_run_state() -> set[str]:
    """What dockerd and containerd would leave in this machine's /run without a private one."""
    return {name for name in ("docker", "containerd") if Path("/run", name).exists()}


@pytest.mark.docker
def test_a_stopped_daemon_leaves_nothing_behind(tmp_path: Path) -> None:
    """A second daemon (in its own network namespace: the session's owns docker0) with a
    container running: after exit no process, mount or file of it is left."""
    run_before = _docker_run_state()
    with docker_daemon_process(own_network=True) as daemon:
        image = _sleep_image(daemon, tmp_path)
        cid = daemon.docker("run", "-d", "--network", "none", image, "/bin/sleep", "300").stdout
        inspect = daemon.docker("inspect", "-f", "{{.State.Pid}}", cid.strip())
        pids = [daemon.process.pid, *pids_mentioning(daemon.dir), int(inspect.stdout)]
        assert len(pids) >= 4, "dockerd, its containerd, the container's shim and sleep"
        workdir = daemon.dir
        assert mounts_under(workdir, daemon.process.pid), "the container's overlay rootfs"
        assert not mounts_under(workdir), "layers are mounted in the daemon's namespace only"
    assert not workdir.exists()
    for pid in pids:
        assert _stale.process_gone(pid), f"pid {pid} outlived the daemon"
    assert _docker_run_state() == run_before


CRASHING_RUN = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, {tests_dir!r})
from tests.infra.docker_daemon import docker_daemon_process, pids_mentioning
from test_docker import _sleep_image

def test_then_get_killed(tmp_path):
    with docker_daemon_process(own_network=True) as daemon:
        image = _sleep_image(daemon, tmp_path)
        cid = daemon.docker("run", "-d", "--network", "none", image, "/bin/sleep", "300")
        inspect = daemon.docker("inspect", "-f", "{{{{.State.Pid}}}}", cid.stdout.strip())
        pids = [daemon.process.pid, *pids_mentioning(daemon.dir), int(inspect.stdout)]
        state = {{"dir": str(daemon.dir), "pids": pids}}
        Path(__file__).with_name("state.json").write_text(json.dumps(state))
        time.sleep(300)
"""


@pytest.mark.docker
def test_a_crashed_runs_daemon_is_removed_by_the_next(tmp_path: Path) -> None:
    here = Path(__file__).resolve().parent
    (tmp_path / "test_crash.py").write_text(CRASHING_RUN.format(tests_dir=str(here)))
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", os.devnull]
    inner = ManagedProcess(
        [*argv, "--rootdir", str(tmp_path), str(tmp_path / "test_crash.py")],
        tmp_path / "inner.log",
        env={"PYTHONPATH": str(here.parents[2])},
        cwd=tmp_path,
        stop_signal=signal.SIGKILL,  # a crash: no teardown runs
    )
    with inner:
        state_file = tmp_path / "state.json"
        wait_until(state_file.exists, 60, f"the inner run to start dockerd:\n{inner.log_tail()}")
        state = json.loads(state_file.read_text())
    workdir = Path(state["dir"])
    assert len(state["pids"]) >= 4 and all(map(_stale.pid_alive, state["pids"]))

    remove_stale()

    assert not workdir.exists()
    for pid in state["pids"]:
        assert _stale.process_gone(pid), f"pid {pid} of the crashed run's daemon still runs"


def test_containers_reach_a_service_on_the_hosts_gateway(
    docker_hosts: list[SshHost],
    docker_daemon: DockerDaemon,
    docker_base_image: str,
    tmp_path: Path,
) -> None:
    """Where a deploy test binds its manager (host.gateway), containers reach it too."""
    gateway = docker_hosts[0].gateway
    (tmp_path / "hello.txt").write_text("from the test machine")
    port = free_port(gateway)
    argv = [sys.executable, "-m", "http.server", "--bind", gateway, str(port)]
    with ManagedProcess(argv, tmp_path / "http.log", cwd=tmp_path) as server:
        server.wait_ready(port, deadline_s=10, host=gateway)
        url = f"http://{gateway}:{port}/hello.txt"
        code = f"import urllib.request as u; print(u.urlopen('{url}', timeout=5).read().decode())"
        out = docker_daemon.docker("run", "--rm", docker_base_image, "python3", "-c", code)
    assert out.stdout.strip() == "from the test machine"

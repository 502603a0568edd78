"""The Docker format for real: the image builds from a manager bundle with networking off
(wheels from the bundle, nothing else but the base image), compose starts it as a non-root
user with host networking, and the manager answers /healthz."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.version import __version__
from tests.infra import _stale, policy
from tests.infra.docker_daemon import DockerDaemon
from tests.infra.process import http_status, wait_until
from tests.integration.bundle.conftest import run_install, unpack_release, write_echo_cluster
from wrctl.bundle.build import BundleOptions, build_bundles
from wrctl.bundle.wheelset import WheelSet
from wrctl.config import load_targets

WRCTL = str(Path(sys.executable).parent / "wrctl")
pytestmark = pytest.mark.slow


def test_manager_image_builds_offline_and_serves_healthz(
    tmp_path: Path,
    components: dict[str, Path],
    bundle_wheels: WheelSet,
    docker_daemon: DockerDaemon,
    docker_base_image: str,
) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        policy.unavailable("docker-compose", "bash scripts/install-docker-deps.sh")
    extra = f'\n[defaults]\nformat = "docker"\ndocker_base_image = "{docker_base_image}"\n'
    cluster = write_echo_cluster(tmp_path / "src", components["echo"])
    text = cluster.file.read_text().replace('[defaults]\nformat = "supervisor"\n', extra)
    cluster.file.write_text(text)
    manager = build_bundles(
        load_targets(cluster.file),
        tmp_path / "out",
        __version__,
        [],
        BundleOptions(wheels=bundle_wheels),
    )[0]
    workdir = _stale.owned_temp_dir("wrtest-bundle-")
    workdir.chmod(0o755)  # the containers' user reaches WORKDIR through it
    release = unpack_release(manager, workdir)
    # TLS files never travel in a bundle (`wrctl cert issue`); install.sh gives them to the
    # containers' user, which must read its key (0600)
    issued = subprocess.run(
        [
            WRCTL,
            "cert",
            "issue",
            "--manager",
            "--host",
            "127.0.0.1",
            "--out",
            str(workdir / "manager" / "tls"),
            "-c",
            str(cluster.file),
        ],
        capture_output=True,
        text=True,
    )
    assert issued.returncode == 0, issued.stdout + issued.stderr
    done = run_install(release, workdir, "docker")
    assert done.returncode == 0, done.stderr
    assert not (release / "venv").exists()  # the docker format makes no venv on the host

    image = f"wruntime-bt-manager:{release.name[:12]}"
    dockerfile = (release / "docker" / "Dockerfile").read_text()
    assert f'ARG BASE_IMAGE="{docker_base_image}"' in dockerfile  # quoted, escaped
    docker_daemon.docker(
        "build",
        "--network",
        "none",
        "-t",
        image,
        "-f",
        str(release / "docker" / "Dockerfile"),
        str(release),
        timeout_s=600,
    )
    project = f"wrbt{os.getpid()}"
    env = {**os.environ, **docker_daemon.env()}
    up = [compose, "-p", project, "-f", str(release / "etc/docker/compose.yaml")]
    started = subprocess.run(
        [*up, "up", "-d"], capture_output=True, text=True, env=env, timeout=120
    )
    try:
        assert started.returncode == 0, started.stderr
        healthz = f"http://127.0.0.1:{cluster.ports['ma']}/healthz"
        try:
            wait_until(lambda: http_status(healthz) == 200, 60, "the manager container's /healthz")
        except TimeoutError:
            logs = subprocess.run([*up, "logs"], capture_output=True, text=True, env=env)
            raise AssertionError(f"no /healthz\n{logs.stdout[-3000:]}") from None
        ids = subprocess.run([*up, "ps", "-q"], capture_output=True, text=True, env=env)
        user = docker_daemon.docker("inspect", "--format", "{{.Config.User}}", ids.stdout.strip())
        assert user.stdout.strip() == "10001:10001"  # not root
        assert (workdir / "manager" / "data" / "secrets.key").stat().st_uid == 10001
        assert (workdir / "manager" / "tls" / "manager.key").stat().st_uid == 10001
    finally:
        subprocess.run([*up, "down", "-t", "20"], capture_output=True, env=env, timeout=120)

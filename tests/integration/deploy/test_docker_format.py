"""DockerFormat on fake Docker hosts over SSH: image built on the host from the release dir,
compose up, release switch, logs, stop, remove."""

from __future__ import annotations

import json
import os

import pytest

from tests.infra.docker_daemon import DockerDaemon
from tests.infra.process import free_port
from tests.infra.ssh_hosts import SshHost
from tests.integration.deploy.releases import (
    http_get,
    prepare_workdir,
    rollout_for,
    wait_down,
    wait_for_body,
    write_release,
)
from tests.integration.deploy.support import transport_for
from wrctl.deploy.docker import DockerFormat, image_name
from wrctl.deploy.formats import stream_logs

WORKDIR = "/opt/wrtest-docker"
TARGET = "node-a"
CLUSTER = f"wrtest{os.getpid()}"


def _release(tag: str, port: int) -> dict[str, str]:
    server = ["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    compose = {
        "version": "3.7",
        "services": {
            "wr-a-web": {
                "image": image_name(CLUSTER, TARGET, tag),
                "network_mode": "host",
                "restart": "unless-stopped",
                "working_dir": "/srv/www",
                "command": server,
            }
        },
    }
    return {
        "manifest.json": json.dumps({"cluster": CLUSTER, "target": TARGET}),
        "www/index.html": f"{tag}\n",
        "docker/Dockerfile": (
            'ARG BASE_IMAGE=missing-base\nFROM ${BASE_IMAGE}\nCOPY www /srv/www\nCMD ["python3"]\n'
        ),
        "etc/docker/compose.yaml": json.dumps(compose, indent=1),  # JSON is YAML
    }


@pytest.fixture
def docker_host(docker_hosts: list[SshHost]) -> SshHost:
    return docker_hosts[0]


def test_docker_lifecycle(
    docker_host: SshHost, docker_base_image: str, docker_daemon: DockerDaemon
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"  # host network of the shared daemon = this machine
    t = transport_for(docker_host)
    fmt = DockerFormat(t, WORKDIR, docker_base_image)
    try:
        assert fmt.preflight() == []
        prepare_workdir(t, WORKDIR)
        rollout = rollout_for(t, WORKDIR, fmt, TARGET)
        for tag in ("r1", "r2", "r3"):
            write_release(t, WORKDIR, TARGET, tag, _release(tag, port))

        rollout.switch("r1")
        rollout.restart()
        wait_for_body(url, "r1")
        rollout.switch("r2")
        rollout.restart()
        wait_for_body(url, "r2")
        images = docker_daemon.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
        assert {image_name(CLUSTER, TARGET, t) for t in ("r1", "r2")} <= set(images.stdout.split())
        # Pruning r1 (neither current nor among the newest two) deletes its image too.
        rollout.switch("r3")
        rollout.restart()
        wait_for_body(url, "r3")
        assert rollout.prune(keep=2) == ["r1"]
        images = docker_daemon.docker("image", "ls", "--format", "{{.Repository}}:{{.Tag}}")
        assert image_name(CLUSTER, TARGET, "r1") not in images.stdout.split()
        assert {image_name(CLUSTER, TARGET, t) for t in ("r2", "r3")} <= set(images.stdout.split())

        http_get(url + "index.html")
        tail = fmt.log_tail(TARGET, 20)
        assert "==> wr-node-a" in tail and "GET /index.html" in tail
        chunks: list[str] = []
        assert stream_logs(t, fmt, TARGET, chunks.append, service="web", lines=20) == 0
        assert "GET /index.html" in "".join(chunks)

        fmt.stop(TARGET)
        wait_down(url)
        rollout.restart()  # the same release again: containers recreated
        wait_for_body(url, "r3")

        assert not fmt.shutdown_if_idle()
        fmt.remove(TARGET)
        wait_down(url)
        left = docker_daemon.docker(
            "ps", "-aq", "--filter", "label=com.docker.compose.project=wr-node-a"
        )
        assert left.stdout.strip() == ""
        images = docker_daemon.docker("image", "ls", "--format", "{{.Repository}}")
        assert f"wruntime-{CLUSTER}-{TARGET}" not in images.stdout.split()
    finally:
        fmt.remove(TARGET)
        t.run(f"rm -rf {WORKDIR}", sudo=True, check=False)
        t.close()

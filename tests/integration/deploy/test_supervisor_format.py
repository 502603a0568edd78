"""SupervisorFormat on a plain sshd host: supervisord installed once from a release's wheels
into WORKDIR/supervisor-venv, run as the deploy user; release switch, logs, stop, remove."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.process import free_port, wait_until
from tests.infra.ssh_hosts import SshHost
from tests.integration.deploy.releases import (
    http_get,
    prepare_workdir,
    rollout_for,
    wait_down,
    wait_for_body,
    write_files,
    write_release,
)
from tests.integration.deploy.support import transport_for
from tests.integration.deploy.wheels import repacked_wheel
from wrctl.deploy.formats import stream_logs
from wrctl.deploy.supervisor import SupervisorFormat
from wrctl.deploy.transport import CommandTimeout
from wrctl.templates import render

TARGET = "node-a"


def _release(workdir: str, address: str, port: int, tag: str) -> dict[str, str]:
    current = f"{workdir}/{TARGET}/current"
    return {
        "www/index.html": f"{tag}\n",
        "etc/supervisor/programs.conf": (
            f"[group:wr-{TARGET}]\nprograms=wr-a-web\n"
            "[program:wr-a-web]\n"
            f"command=/usr/bin/python3 -m http.server {port} --bind {address} "
            f"--directory {current}/www\n"
            "autostart=true\nautorestart=true\nstartsecs=0\nredirect_stderr=true\n"
            f"stdout_logfile={workdir}/logs/wr-a-web.log\n"
        ),
    }


def test_supervisor_lifecycle(
    ssh_hosts: list[SshHost], wruntime_cache: Path, tmp_path: Path
) -> None:
    host = ssh_hosts[0]
    workdir = f"{host.remote_opt}/wrtest-supervisor"
    port = 8082 if host.mode == "netns" else free_port(host.address)
    url = f"http://{host.address}:{port}/"
    t = transport_for(host)
    fmt = SupervisorFormat.remote(t, workdir, "/usr/bin/python3")
    try:
        prepare_workdir(t, workdir)
        assert fmt.preflight() == []  # not installed yet, but installable
        rollout = rollout_for(t, workdir, fmt, TARGET)
        for tag in ("r1", "r2"):
            write_release(t, workdir, TARGET, tag, _release(workdir, host.address, port, tag))
        wheel = repacked_wheel("supervisor", wruntime_cache)
        t.run(f"mkdir -p {workdir}/{TARGET}/releases/r1/wheels {workdir}/logs {workdir}/run")
        t.put(wheel, f"{workdir}/{TARGET}/releases/r1/wheels/{wheel.name}")
        conf = render("supervisord.conf.j2").replace("@WORKDIR@", workdir)
        write_files(t, workdir, {"supervisord.conf": conf})

        rollout.switch("r1")
        rollout.restart()  # installs supervisord, starts it, starts the group
        wait_for_body(url, "r1")
        assert t.run(f"test -x {workdir}/supervisor-venv/bin/supervisord").ok
        pid = t.run(
            f"{workdir}/supervisor-venv/bin/supervisorctl -c {workdir}/supervisord.conf pid"
        ).stdout.strip()
        assert t.run(f"ps -o user= -p {pid}").stdout.strip() == "deploy"

        rollout.switch("r2")
        rollout.restart()
        wait_for_body(url, "r2")

        http_get(url + "index.html")
        tail = fmt.log_tail(TARGET, 20)
        assert "wr-a-web.log" in tail and "GET /index.html" in tail
        chunks: list[str] = []
        assert stream_logs(t, fmt, TARGET, chunks.append, service="web", lines=50) == 0
        assert "GET /index.html" in "".join(chunks)
        followed: list[str] = []
        with pytest.raises(CommandTimeout):  # --follow runs until stopped
            stream_logs(t, fmt, TARGET, followed.append, follow=True, lines=3, timeout=1.5)
        assert "GET /index.html" in "".join(followed)
        wait_until(  # stopping the stream ended the remote `tail -F` too
            lambda: not t.run("pgrep -u deploy -x tail", check=False).ok,
            10.0,
            "the remote tail -F to end",
        )

        fmt.stop(TARGET)
        wait_down(url)
        assert not fmt.shutdown_if_idle()  # the program is stopped, not gone

        rollout.remove()
        assert fmt.shutdown_if_idle()
        assert not t.run(f"kill -0 {pid}", check=False).ok
    finally:
        fmt.shutdown_if_idle()
        t.run(f"rm -rf {workdir}", sudo=True, check=False)
        t.close()

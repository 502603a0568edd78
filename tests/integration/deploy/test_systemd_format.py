"""SystemdFormat on hosts whose PID 1 is a real systemd, over SSH: install units, restart
on release switch, drop units a release no longer has, stop, logs, remove."""

from __future__ import annotations

import pytest

from tests.infra.process import wait_until
from tests.infra.systemd_hosts import SystemdHost
from tests.integration.deploy.releases import (
    http_get,
    prepare_workdir,
    rollout_for,
    wait_down,
    wait_for_body,
    write_release,
)
from tests.integration.deploy.support import transport_for
from wrctl.deploy.formats import stream_logs
from wrctl.deploy.ssh import SshTransport
from wrctl.deploy.systemd import SystemdFormat
from wrctl.deploy.transport import CommandTimeout, HostCommandError

WORKDIR = "/opt/wrtest-systemd"
TARGET = "node-a"
PORT = 8081


def _release(address: str, tag: str, extra_unit: bool) -> dict[str, str]:
    current = f"{WORKDIR}/{TARGET}/current"
    files = {
        "www/index.html": f"{tag}\n",
        f"etc/systemd/wr-{TARGET}.target": (
            "[Unit]\nDescription=wruntime test target\n"
            "Wants=wr-a-web.service" + (" wr-a-extra.service" if extra_unit else "") + "\n"
            "[Install]\nWantedBy=multi-user.target\n"
        ),
        "etc/systemd/wr-a-web.service": (
            f"[Unit]\nDescription=test web\nPartOf=wr-{TARGET}.target\n"
            f"[Service]\nExecStart=/usr/bin/python3 -m http.server {PORT} --bind {address} "
            f"--directory {current}/www\nRestart=on-failure\nUser=deploy\n"
        ),
    }
    if extra_unit:
        files["etc/systemd/wr-a-extra.service"] = (
            f"[Unit]\nPartOf=wr-{TARGET}.target\n[Service]\nExecStart=/bin/sleep infinity\n"
        )
    return files


@pytest.fixture
def systemd_host(systemd_hosts: list[SystemdHost]) -> SystemdHost:
    return systemd_hosts[0]


def _active(t: SshTransport, unit: str) -> str:
    return t.run(f"systemctl is-active {unit}", check=False).stdout.strip()


def test_systemd_lifecycle(systemd_host: SystemdHost) -> None:
    host = systemd_host
    url = f"http://{host.address}:{PORT}/"
    t = transport_for(host)
    fmt = SystemdFormat(t, WORKDIR)
    try:
        assert fmt.preflight() == []
        prepare_workdir(t, WORKDIR)
        rollout = rollout_for(t, WORKDIR, fmt, TARGET)
        write_release(t, WORKDIR, TARGET, "r1", _release(host.address, "r1", extra_unit=False))
        write_release(t, WORKDIR, TARGET, "r2", _release(host.address, "r2", extra_unit=True))

        rollout.switch("r1")
        rollout.restart()
        wait_for_body(url, "r1")
        assert _active(t, f"wr-{TARGET}.target") == "active"
        enabled = t.run(f"systemctl is-enabled wr-{TARGET}.target").stdout.strip()
        assert enabled == "enabled"

        rollout.switch("r2")  # a new release with one more unit
        rollout.restart()
        wait_for_body(url, "r2")
        assert _active(t, "wr-a-extra.service") == "active"

        rollout.switch("r1")  # back: the unit r1 does not have is stopped and deleted
        rollout.restart()
        wait_for_body(url, "r1")
        assert _active(t, "wr-a-extra.service") == "inactive"
        assert not host.host_path("/etc/systemd/system/wr-a-extra.service").exists()

        http_get(url + "index.html")  # a request line for the logs
        tail = fmt.log_tail(TARGET, 20)
        assert "==> wr-a-web.service" in tail and "GET /index.html" in tail
        chunks: list[str] = []
        assert stream_logs(t, fmt, TARGET, chunks.append, service="web", lines=50) == 0
        assert "GET /index.html" in "".join(chunks)
        followed: list[str] = []
        with pytest.raises(CommandTimeout):  # --follow runs until interrupted
            stream_logs(t, fmt, TARGET, followed.append, follow=True, lines=5, timeout=2)
        assert "GET /index.html" in "".join(followed)
        wait_until(  # stopping the stream ended the remote `journalctl -f` too
            lambda: not t.run("pgrep -x journalctl", check=False).ok,
            10.0,
            "the remote journalctl -f to end",
        )

        fmt.stop(TARGET)
        wait_down(url)
        assert _active(t, "wr-a-web.service") == "inactive"

        rollout.restart()
        wait_for_body(url, "r1")
        fmt.remove(TARGET)
        wait_down(url)
        assert not host.host_path(f"/etc/systemd/system/wr-{TARGET}.target").exists()
        assert not host.host_path("/etc/systemd/system/wr-a-web.service").exists()
        assert fmt.shutdown_if_idle()
        assert host.failed_units() == []
    finally:
        fmt.remove(TARGET)
        t.run(f"rm -rf {WORKDIR}", sudo=True, check=False)
        t.close()


def test_restart_without_units_says_so(systemd_host: SystemdHost) -> None:
    t = transport_for(systemd_host)
    fmt = SystemdFormat(t, WORKDIR + "-empty")
    try:
        prepare_workdir(t, WORKDIR + "-empty")
        rollout = rollout_for(t, WORKDIR + "-empty", fmt, TARGET)
        write_release(t, WORKDIR + "-empty", TARGET, "r0", {"manifest.json": "{}"})
        rollout.switch("r0")
        with pytest.raises(HostCommandError, match="no systemd units in"):
            fmt.restart(TARGET)
    finally:
        t.run(f"rm -rf {WORKDIR}-empty", sudo=True, check=False)
        t.close()

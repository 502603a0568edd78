"""Preflight against real fake hosts: a fit host passes and gets its workdir; an unfit one
gets one line per failed check, all checks run."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import pytest

from tests.infra.ssh_hosts import SshHost, fake_ssh_hosts
from tests.integration.deploy.support import transport_for
from wrctl.bundle.tarball import build_tarball
from wrctl.deploy.docker import DockerFormat
from wrctl.deploy.preflight import (
    BundleFacts,
    PreflightFailed,
    bundle_facts,
    check_and_prepare,
    run_checks,
)
from wrctl.deploy.rollout import TargetHost
from wrctl.deploy.supervisor import SupervisorFormat
from wrctl.deploy.systemd import SystemdFormat
from wrctl.errors import WrctlError

PYTHON = "/usr/bin/python3"  # the deploy user cannot run /root's Python


def _bundle(tmp_path: Path, platform_value: object) -> Path:
    manifest = {"kind": "node", "cluster": "c", "platform": platform_value}
    path = tmp_path / "b.tar.gz"
    build_tarball({"manifest.json": json.dumps(manifest).encode()}, path)
    return path


def test_a_fit_host_passes_and_gets_its_workdir(ssh_hosts: list[SshHost], tmp_path: Path) -> None:
    host = ssh_hosts[0]
    workdir = f"{host.remote_opt}/wrtest-preflight/deep"
    t = transport_for(host)
    try:
        target = TargetHost(t, workdir, SupervisorFormat.remote(t, workdir, PYTHON), "", PYTHON)
        bundle = _bundle(tmp_path, {"python": "3.11", "machine": platform.machine()})
        with pytest.raises(PreflightFailed, match="not writable by the deploy user"):
            check_and_prepare(target, bundle)  # /opt is root's and sudo is not allowed
        target.sudo = True
        check_and_prepare(target, bundle)
        owner = t.run(f"stat -c %U {workdir} $(dirname {workdir})").stdout.split()
        assert owner == ["deploy", "root"]  # the workdir is deploy's, its parents stay root's
        assert run_checks(target, bundle_facts(bundle)) == []
    finally:
        t.run(f"rm -rf {host.remote_opt}/wrtest-preflight", sudo=True, check=False)
        t.close()


def test_every_failed_check_gets_its_own_line(ssh_hosts: list[SshHost]) -> None:
    host = ssh_hosts[0]
    t = transport_for(host)
    try:
        workdir = f"{host.remote_opt}/wrtest-unfit"
        target = TargetHost(t, workdir, DockerFormat(t, workdir), "", "/usr/bin/python9")
        other_arch = "aarch64" if platform.machine() != "aarch64" else "x86_64"
        facts = BundleFacts("3.11", other_arch, 10 * 1024**5)  # 10 PiB
        problems = run_checks(target, facts)
        assert len(problems) == 5, problems
        python, arch, disk, workdir_line, docker = problems
        assert python.startswith("python `/usr/bin/python9` is not runnable")
        assert (
            arch
            == f"architecture is {platform.machine()}, but the bundle is built for {other_arch}"
        )
        assert disk.startswith("only ") and f"free under {workdir}; need 20480.0 TiB" in disk
        assert "not writable" in workdir_line
        assert docker.startswith("the Docker daemon is not reachable")
        message = str(PreflightFailed(t.name, problems))
        assert message.startswith(f"preflight failed on {t.name}:") and message.count("\n  - ") == 5
    finally:
        t.close()


def test_python_of_another_minor_and_a_host_without_systemd(ssh_hosts: list[SshHost]) -> None:
    host = ssh_hosts[1]
    t = transport_for(host)
    try:
        workdir = f"/home/{host.user}/wrtest-systemd-pre"
        target = TargetHost(t, workdir, SystemdFormat(t, workdir), "", PYTHON)
        problems = run_checks(target, BundleFacts("3.12", platform.machine(), 1024))
        assert len(problems) == 2, problems
        assert "the bundle's wheels are for Python 3.12" in problems[0]
        assert problems[1].startswith("systemd is not the running init system")
    finally:
        t.close()


def test_bundle_facts_read_the_manifest(tmp_path: Path) -> None:
    facts = bundle_facts(_bundle(tmp_path, "manylinux_2_17_aarch64"))
    assert (facts.machine, facts.size > 0) == ("aarch64", True)
    assert bundle_facts(_bundle(tmp_path, {"python": "3.11", "machine": "AMD64"})).machine == (
        "x86_64"
    )
    with pytest.raises(WrctlError, match="cannot tell the target machine"):
        bundle_facts(_bundle(tmp_path, {"python": "3.11"}))


def test_a_host_without_docker_says_so() -> None:
    # A host of its own where this machine's docker CLIs are /dev/null (not executable).
    hide = tuple(
        f"mount --bind /dev/null {cli}"
        for cli in ("/usr/bin/docker", "/usr/local/bin/docker")
        if Path(cli).exists()
    )
    with fake_ssh_hosts(("nodocker",), mode="netns", host_setup=hide) as (host,):
        t = transport_for(host)
        try:
            assert t.run("docker --version", check=False).exit_code == 126  # not runnable
            workdir = f"/home/{host.user}/wr"
            target = TargetHost(t, workdir, DockerFormat(t, workdir), "", PYTHON)
            problems = run_checks(target, BundleFacts("3.11", platform.machine(), 1024))
            assert problems == ["docker CLI not found on the host (install docker.io or docker-ce)"]
        finally:
            t.close()

"""A node bundle and a manager bundle, unpacked into a fresh dir, install with no network
(pip --no-index, inside a network namespace with nothing up), start under supervisord from
the bundle's own venv with TLS files issued by `wrctl cert issue`, and serve example.echo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.version import __version__
from tests.infra import _stale
from tests.infra.process import ManagedProcess, wait_until
from tests.integration.bundle.conftest import run_install, unpack_release, write_echo_cluster
from wrctl.bundle.build import Bundle, BundleOptions, build_bundles
from wrctl.bundle.hostverify import verify_bundle
from wrctl.bundle.wheelset import WheelSet
from wrctl.config import load_targets
from wrctl.credentials import OperatorCredentials, files_in
from wrctl.managerapi import ManagerClient

pytestmark = pytest.mark.slow
WRCTL = str(Path(sys.executable).parent / "wrctl")


def test_bundles_install_offline_start_and_serve_echo(
    tmp_path: Path, components: dict[str, Path], bundle_wheels: WheelSet
) -> None:
    cluster = write_echo_cluster(tmp_path / "src", components["echo"])
    targets = load_targets(cluster.file)
    bundles = build_bundles(
        targets,
        tmp_path / "out",
        __version__,
        options=BundleOptions(wheels=bundle_wheels),
    )
    workdir = _stale.owned_temp_dir("wrtest-bundle-")
    releases = {b.target: unpack_release(b, workdir) for b in bundles}
    for target, release in releases.items():
        # the verifier the bundle carries runs on a bare Python and accepts its own bundle
        verify_bundle(release)
        done = run_install(release, workdir, offline=True)
        assert done.returncode == 0, f"{target}: {done.stdout}{done.stderr}"
        assert (release / "venv" / ".wr-installed").is_file()
    # releases with the same wheels share one venv under WORKDIR/venvs
    shared = {(release / "venv").resolve() for release in releases.values()}
    assert len(shared) == 1 and shared.pop().parent == (workdir / "venvs").resolve()
    again = run_install(releases["node-a"], workdir, offline=True)
    assert again.returncode == 0 and "installed node-a" in again.stdout  # idempotent
    # TLS files never travel in a bundle: the CA holder issues them (`wrctl cert issue`, as
    # the bundle command's output says) into the dirs the configs name; the operator gets one
    # for `wrctl invoke` (WR_CREDENTIALS)
    for args in (
        ("--node", "a", "--host", "127.0.0.1", "--out", str(workdir / "node-a" / "tls")),
        ("--manager", "--host", "127.0.0.1", "--out", str(workdir / "manager" / "tls")),
        ("--operator", "offline", "--out", str(tmp_path / "operator")),
    ):
        issued = subprocess.run(
            [WRCTL, "cert", "issue", *args, "-c", str(cluster.file)], capture_output=True, text=True
        )
        assert issued.returncode == 0, issued.stdout + issued.stderr

    bin_dir = workdir / "manager" / "current" / "venv" / "bin"
    supervisord = ManagedProcess(
        [bin_dir / "supervisord", "-n", "-c", workdir / "supervisord.conf"],
        tmp_path / "supervisord.out",
        name="supervisord",
    )
    supervisord.start()
    try:
        supervisord.wait_ready(f"http://127.0.0.1:{cluster.ports['ma']}/healthz", 60)
        # the manager lets node a register only what a release places on it: without apply,
        # the operator records the bundle's release (what apply would have recorded)
        _record_release(f"127.0.0.1:{cluster.ports['m']}", tmp_path / "operator", bundles)
        # its engine may have been refused (and given up) before that: start it again
        restart = [str(bin_dir / "supervisorctl"), "-c", str(workdir / "supervisord.conf")]
        restarted = subprocess.run(
            [*restart, "restart", "wr-node-a:*"], capture_output=True, text=True, timeout=60
        )
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        invoke = [
            str(workdir / "node-a" / "current" / "venv" / "bin" / "wrctl"),
            "invoke",
            "example.echo/echo.EchoService/Echo",
            "--data",
            '{"message": "offline"}',
            "--proxy",
            f"127.0.0.1:{cluster.ports['d']}",
            "--manager",
            f"127.0.0.1:{cluster.ports['m']}",
        ]

        env = {**os.environ, "WR_CREDENTIALS": str(tmp_path / "operator")}

        def echoed() -> dict[str, str] | None:
            done = subprocess.run(invoke, capture_output=True, text=True, timeout=30, env=env)
            return json.loads(done.stdout) if done.returncode == 0 else None

        try:
            reply = wait_until(echoed, 120, "example.echo to answer through the bundle's proxy")
        except TimeoutError:
            logs = sorted((workdir / "logs").glob("*.log"))
            tails = "\n".join(f"==> {p.name}\n{p.read_text()[-1500:]}" for p in logs)
            raise AssertionError(f"echo never answered\n{tails}") from None
        assert reply == {"message": "offline"}
    finally:
        # supervisord stops its programs (own process groups) on SIGTERM: give it their
        # stopwaitsecs before the group SIGKILL
        supervisord.stop(grace_s=30)
    assert not list(workdir.glob("run/*.sock")), "supervisord did not shut down cleanly"
    _check_repacked_runtime_wheel(workdir, bundle_wheels.files[0], tmp_path)


def _record_release(address: str, operator: Path, bundles: list[Bundle]) -> None:
    node = next(b for b in bundles if b.target == "node-a")
    client = ManagerClient(address, OperatorCredentials(files_in(operator), "test"))
    try:
        with client.apply_lock("offline install") as lock:
            client.record(
                pb.ReleaseRecord(
                    target="a",
                    bundle_digest=node.digest,
                    module_digests=node.module_digests,
                    runtime_version=__version__,
                    status="applied",
                ),
                lock.lock_id,
            )
    finally:
        client.close()


def _check_repacked_runtime_wheel(workdir: Path, original: Path, tmp_path: Path) -> None:
    """wrctl installed from a wheel (no checkout) repacks its own distribution: the same
    files as the wheel it was installed from, and the same bytes every time."""
    python = workdir / "node-a" / "current" / "venv" / "bin" / "python"
    code = (
        "import sys; from pathlib import Path; "
        "from wrctl.bundle.runtime_wheel import runtime_wheel; "
        "print(runtime_wheel(Path(sys.argv[1])))"
    )
    wheels = []
    for name in ("one", "two"):
        done = subprocess.run(
            [str(python), "-c", code, str(tmp_path / name)], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        wheels.append(Path(done.stdout.strip()))
    assert wheels[0].read_bytes() == wheels[1].read_bytes()
    with zipfile.ZipFile(original) as a, zipfile.ZipFile(wheels[0]) as b:
        record = next(n for n in a.namelist() if n.endswith(".dist-info/RECORD"))
        assert sorted(a.namelist()) == sorted(b.namelist())
        for name in a.namelist():
            if name != record:
                assert a.read(name) == b.read(name), name

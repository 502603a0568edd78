"""A manager knows the cluster it serves and says so; wrctl plan, apply, destroy and rollback
refuse to act on another cluster's manager (issue 17: a plan proposed replacing it) unless
--allow-other-cluster says to. Real wr-manager processes; nothing is deployed."""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.manager.config import load_manager_config
from runtime.version import __version__
from runtime.wire import COMPONENT_HEADER
from tests.e2e.test_overrides import wrctl
from tests.infra.process import free_port
from tests.integration.manager.builders import release
from tests.integration.manager.test_process import ManagerProcess
from wrctl.bundle.build import build_bundles
from wrctl.config import load_targets
from wrctl.managerapi import ManagerClient


@pytest.fixture(scope="module")
def alpha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProcess]:
    """The manager of cluster `alpha`, with a release of its node `a` recorded."""
    process = ManagerProcess(
        tmp_path_factory.mktemp("alpha") / "m", "sqlite", 'cluster = "alpha"\n'
    )
    proc = process.start_ready()
    client = ManagerClient(f"127.0.0.1:{process.grpc_port}")
    try:
        with client.apply_lock("setup") as lock:
            client.record(release("a", "bundle-1"), lock.lock_id)
        yield process
    finally:
        client.close()
        proc.stop()


def _cluster(root: Path, name: str, manager_port: int) -> Path:
    """A local cluster.toml named `name` whose manager is at manager_port."""
    (root / "echo.wasm").write_bytes(COMPONENT_HEADER + b"echo")
    ports = "\n".join(
        f"{key} = {free_port()}"
        for key in ("data_port", "control_port", "admin_port", "peer_port", "engine_port")
    )
    path = root / "cluster.toml"
    path.write_text(
        f'[cluster]\nname = "{name}"\n[manager]\nhost = "local"\nport = {manager_port}\n'
        f'admin_port = {free_port()}\n[defaults]\nformat = "supervisor"\nworkdir = "wr"\n'
        f'[[node]]\nname = "a"\nhost = "local"\n{ports}\n'
        '[[module]]\nnamespace = "example"\nname = "echo"\nversion = "1.0.0"\n'
        'component = "echo.wasm"\n'
    )
    return path


def _state(process: ManagerProcess) -> pb.GetClusterStateResponse:
    client = ManagerClient(f"127.0.0.1:{process.grpc_port}")
    try:
        return client.state()
    finally:
        client.close()


def test_the_manager_says_which_cluster_it_serves(alpha: ManagerProcess, tmp_path: Path) -> None:
    assert _state(alpha).cluster == "alpha"
    # and a manager wrctl deploys is told its cluster's name
    cluster = _cluster(tmp_path, "beta", free_port())
    manager = build_bundles(load_targets(cluster), tmp_path / "out", __version__)[0]
    with tarfile.open(manager.path) as tar:
        member = tar.extractfile("config/manager.toml")
        assert member is not None
        (tmp_path / "manager.toml").write_bytes(member.read())
    assert load_manager_config(tmp_path / "manager.toml").cluster == "beta"


def test_another_clusters_manager_is_refused(alpha: ManagerProcess, tmp_path: Path) -> None:
    _cluster(tmp_path, "beta", alpha.grpc_port)
    before = _state(alpha)
    for args in (
        ("plan",),
        ("apply", "--auto-approve"),
        ("destroy", "--auto-approve"),
        ("rollback", "--auto-approve"),
    ):
        refused = wrctl(tmp_path, *args)
        assert refused.returncode == 1, (args, refused.stdout, refused.stderr)
        assert "serves cluster 'alpha', not 'beta'" in refused.stderr, (args, refused.stderr)
        assert "--allow-other-cluster" in refused.stderr
    after = _state(alpha)
    assert after.serial == before.serial and not after.HasField("lock")
    assert [n.release.bundle_digest for n in after.nodes] == [release("a").bundle_digest]

    allowed = wrctl(tmp_path, "plan", "--json", "--allow-other-cluster")
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["serial"] == before.serial


def test_its_own_cluster_is_planned_as_before(alpha: ManagerProcess, tmp_path: Path) -> None:
    _cluster(tmp_path, "alpha", alpha.grpc_port)
    plan = wrctl(tmp_path, "plan", "--json")
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["serial"] == _state(alpha).serial

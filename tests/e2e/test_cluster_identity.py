"""A manager knows the cluster it serves and says so; wrctl plan, apply, destroy and rollback
refuse to act on another cluster's manager (issue 17: a plan proposed replacing it) unless
--allow-other-cluster says to. With mutual TLS another cluster's CA already fails the
handshake; an operator holding credentials of that manager's CA (WR_CREDENTIALS) still meets
the cluster check. Real wr-manager processes; nothing is deployed."""

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
from tests.e2e.tlsmanager import adopt_ca, operator_dir, tls_manager
from tests.infra.process import free_port
from tests.integration.manager.builders import release
from tests.integration.manager.test_process import ManagerProcess
from wrctl.bundle.build import build_bundles
from wrctl.config import load_targets
from wrctl.credentials import OperatorCredentials, files_in
from wrctl.managerapi import ManagerClient
from wrctl.pki import ClusterCA


@pytest.fixture(scope="module")
def alpha_operator(tmp_path_factory: pytest.TempPathFactory) -> tuple[ClusterCA, Path]:
    """Cluster alpha's CA and a WR_CREDENTIALS dir of one of its operators."""
    ca = ClusterCA(tmp_path_factory.mktemp("alpha-ca"), "alpha")
    return ca, operator_dir(ca, tmp_path_factory.mktemp("alpha-op"))


@pytest.fixture(scope="module")
def alpha(
    tmp_path_factory: pytest.TempPathFactory, alpha_operator: tuple[ClusterCA, Path]
) -> Iterator[ManagerProcess]:
    """The manager of cluster `alpha`, with a release of its node `a` recorded."""
    ca, operator = alpha_operator
    process = tls_manager(tmp_path_factory.mktemp("alpha") / "m", ca, "alpha")
    proc = process.start_ready()
    client = ManagerClient(
        f"127.0.0.1:{process.grpc_port}", OperatorCredentials(files_in(operator), "test")
    )
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


def _state(process: ManagerProcess, operator: Path) -> pb.GetClusterStateResponse:
    credentials = OperatorCredentials(files_in(operator), "test")
    client = ManagerClient(f"127.0.0.1:{process.grpc_port}", credentials)
    try:
        return client.state()
    finally:
        client.close()


def test_the_manager_says_which_cluster_it_serves(
    alpha: ManagerProcess, alpha_operator: tuple[ClusterCA, Path], tmp_path: Path
) -> None:
    assert _state(alpha, alpha_operator[1]).cluster == "alpha"
    # and a manager wrctl deploys is told its cluster's name
    cluster = _cluster(tmp_path, "beta", free_port())
    manager = build_bundles(load_targets(cluster), tmp_path / "out", __version__)[0]
    with tarfile.open(manager.path) as tar:
        member = tar.extractfile("config/manager.toml")
        assert member is not None
        (tmp_path / "manager.toml").write_bytes(member.read())
    assert load_manager_config(tmp_path / "manager.toml").cluster == "beta"


ACTIONS = (
    ("plan",),
    ("apply", "--auto-approve"),
    ("destroy", "--auto-approve"),
    ("rollback", "--auto-approve"),
)


def test_another_clusters_manager_is_refused(
    alpha: ManagerProcess, alpha_operator: tuple[ClusterCA, Path], tmp_path: Path
) -> None:
    _cluster(tmp_path, "beta", alpha.grpc_port)
    operator = alpha_operator[1]
    before = _state(alpha, operator)
    for args in ACTIONS:  # beta's own CA: the handshake fails, clearly
        refused = wrctl(tmp_path, *args)
        assert refused.returncode == 1, (args, refused.stdout, refused.stderr)
        assert f"TLS handshake with the manager at 127.0.0.1:{alpha.grpc_port}" in refused.stderr
        assert "Traceback" not in refused.stderr
    as_alpha = {"WR_CREDENTIALS": str(operator)}
    for args in ACTIONS:  # alpha's credentials: the manager answers, wrctl refuses
        refused = wrctl(tmp_path, *args, env=as_alpha)
        assert refused.returncode == 1, (args, refused.stdout, refused.stderr)
        assert "serves cluster 'alpha', not 'beta'" in refused.stderr, (args, refused.stderr)
        assert "--allow-other-cluster" in refused.stderr
    after = _state(alpha, operator)
    assert after.serial == before.serial and not after.HasField("lock")
    assert [n.release.bundle_digest for n in after.nodes] == [release("a").bundle_digest]

    allowed = wrctl(tmp_path, "plan", "--json", "--allow-other-cluster", env=as_alpha)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["serial"] == before.serial


def test_its_own_cluster_is_planned_as_before(
    alpha: ManagerProcess, alpha_operator: tuple[ClusterCA, Path], tmp_path: Path
) -> None:
    ca, operator = alpha_operator
    adopt_ca(ca, _cluster(tmp_path, "alpha", alpha.grpc_port), "alpha")
    plan = wrctl(tmp_path, "plan", "--json")  # the operator certificate wrctl issues itself
    assert plan.returncode == 0, plan.stderr
    assert json.loads(plan.stdout)["serial"] == _state(alpha, operator).serial

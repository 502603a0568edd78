"""Several managers in cluster.toml ([manager] hosts): validation, the addresses wrctl and the
proxies use, and wrctl's failover to the next manager when one does not answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.process import free_port
from tests.unit.wrctl.fakemanager import serving
from wrctl.config import load_cluster
from wrctl.config.targets import Overrides, manager_endpoints, resolve_targets
from wrctl.credentials import CREDENTIALS_ENV, resolve_credentials
from wrctl.errors import ConfigError, ManagerUnreachable
from wrctl.managerapi import ManagerClient
from wrctl.observe import observe
from wrctl.pki import cluster_ca
from wrctl.templates import render

PG = "postgresql://wr@db.example:5432/wr"
BASE = """\
[cluster]
name = "c"

[manager]
hosts = ["10.0.0.1", "10.0.0.2"]
state = "{state}"

[[node]]
name = "a"
host = "10.0.0.9"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("change", "fragment", "line"),
    [
        (
            ('state = "{state}"', 'state = "sqlite"'),
            "manager.hosts: 2 managers need a shared PostgreSQL state",
            5,
        ),
        (
            ("[manager]\n", '[manager]\nhost = "10.0.0.1"\n'),
            "manager.host: set host (one manager) or hosts, not both",
            5,
        ),
        (
            ('"10.0.0.2"]', '"10.0.0.2", "10.0.0.1"]'),
            "manager.hosts[2]: duplicate manager host '10.0.0.1'",
            5,
        ),
        (
            ('"10.0.0.2"]', '"local"]'),
            'manager.hosts[1]: several managers run on separate hosts, not "local"',
            5,
        ),
    ],
)
def test_bad_manager_hosts_are_refused_at_their_line(
    tmp_path: Path, change: tuple[str, str], fragment: str, line: int
) -> None:
    path = _write(tmp_path, BASE.replace(*change).replace("{state}", PG))
    with pytest.raises(ConfigError) as info:
        load_cluster(path)
    message = str(info.value)
    assert fragment in message, message
    assert f"{path}:{line}:" in message, message


def test_one_sqlite_manager_in_hosts_is_fine(tmp_path: Path) -> None:
    text = BASE.replace('"10.0.0.1", "10.0.0.2"', '"10.0.0.1"').replace("{state}", "sqlite")
    targets = resolve_targets(load_cluster(_write(tmp_path, text)))
    assert targets.manager.endpoints == ("10.0.0.1:9000",)


def test_every_manager_is_dialled_and_rendered_for_the_proxies(tmp_path: Path) -> None:
    config = load_cluster(_write(tmp_path, BASE.replace("{state}", PG)))
    targets = resolve_targets(config)
    assert targets.manager.endpoints == ("10.0.0.1:9000", "10.0.0.2:9000")
    assert targets.manager.node_endpoints == targets.manager.endpoints
    assert [p.host for p in targets.manager.places] == ["10.0.0.1", "10.0.0.2"]
    # --manager / WR_MANAGER may name several, comma-separated.
    assert manager_endpoints(config, Overrides(manager="x:1, http://y:2")) == ["x:1", "y:2"]
    node = targets.nodes[0]
    proxy_toml = render(
        "proxy.toml.j2",
        cluster="c",
        node=node,
        proxy=config.proxy,
        manager_addresses=list(targets.manager.node_endpoints),
        advertise_host=node.place.wire_host,
        peer_listen_host="0.0.0.0",
    )
    assert 'manager_addresses = ["10.0.0.1:9000", "10.0.0.2:9000"]' in proxy_toml
    assert "manager_address =" not in proxy_toml


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(CREDENTIALS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    return _write(tmp_path, '[cluster]\nname = "c"\n[[node]]\nname = "a"\nhost = "local"\n')


def test_wrctl_moves_on_to_a_manager_that_answers(cluster: Path, tmp_path: Path) -> None:
    credentials = resolve_credentials(load_cluster(cluster))
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    with serving(cluster_ca(cluster, "c"), tmp_path / "m") as (address, fake):
        client = ManagerClient([dead, address], credentials, timeout=5)
        try:
            assert client.state().cluster == "c"  # a read: sent again to the next one
            assert client.address == address
            client.set_secret("ns", "k", "v")  # stays on the one that answers
        finally:
            client.close()
        # A write whose first attempt never left (connection refused) is sent on as well.
        client = ManagerClient([dead, address], credentials, timeout=5)
        try:
            client.set_secret("ns", "k2", "v")
        finally:
            client.close()
        assert observe([dead, address], credentials).reachable
    assert fake.calls.count("SetSecret") == 2  # each once: none was lost or doubled
    client = ManagerClient([dead, f"127.0.0.1:{free_port()}"], credentials, timeout=2)
    try:
        with pytest.raises(ManagerUnreachable) as info:
            client.state()
        assert str(info.value).count("manager at 127.0.0.1:") == 2
    finally:
        client.close()


def test_each_manager_host_gets_its_bundle_and_is_a_resource_of_its_own(
    tmp_path: Path,
) -> None:
    from wrctl.bundle.build import build_bundles
    from wrctl.bundle.tarball import read_tarball
    from wrctl.config import load_targets
    from wrctl.plan import resolve

    text = BASE.replace("{state}", PG) + '[defaults]\nformat = "systemd"\n'
    targets = load_targets(_write(tmp_path, text))
    built = build_bundles(targets, tmp_path / "out", "0.1.0")
    managers = [b for b in built if b.kind == "manager"]
    assert [b.path.name for b in managers] == [
        "c-manager-10.0.0.1.tar.gz",
        "c-manager-10.0.0.2.tar.gz",
    ]
    for bundle, host in zip(managers, ("10.0.0.1", "10.0.0.2"), strict=True):
        toml = read_tarball(bundle.path)["config/manager.toml"].decode()
        assert f'advertise_address = "{host}:9000"' in toml
    proxy = read_tarball(next(b for b in built if b.kind == "node").path)["config/proxy.toml"]
    assert b'manager_addresses = ["10.0.0.1:9000", "10.0.0.2:9000"]' in proxy
    desired = resolve(targets, "0.1.0").resources
    assert "manager" not in desired
    for host in ("10.0.0.1", "10.0.0.2"):
        attributes = desired[f"manager.{host}"].attributes
        assert attributes["host"] == host
        assert attributes["advertise_address"] == f"{host}:9000"
        assert "hosts" not in attributes
    one, two = (desired[f"manager.10.0.0.{i}"].attributes["config"] for i in (1, 2))
    assert one != two  # each host's manager.toml advertises its own address
    assert desired["node.a"].attributes["manager"] == "10.0.0.1:9000,10.0.0.2:9000"


class FakeRollout:
    """Rollout, its host and its transport in one fake (test_manager_resources.py uses it too)."""

    def __init__(self, host: str, events: list[str]) -> None:
        from types import SimpleNamespace

        self.name, self.events = host, events
        self.host = self
        self.transport = self
        self.format = SimpleNamespace(install_as_root=False)

    def path(self, target: str, *parts: str) -> str:
        return "/".join(["/wr", target, *parts])

    def run(self, command: str, **_: object) -> object:
        from types import SimpleNamespace

        self.events.append(f"run {self.name}: {command}")
        return SimpleNamespace(stdout="S3CRETKEY\n")

    def close(self) -> None:
        pass

    def restart(self) -> None:
        self.events.append(f"restart {self.name}")

    def switch(self, release: str) -> None:
        self.events.append(f"switch {self.name} {release}")

    def log_tail(self, lines: int = 50) -> str:
        return "last lines"


def test_managers_are_upgraded_one_at_a_time_and_a_failed_gate_rolls_back_and_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from wrctl.config import load_targets
    from wrctl.deploy import apply
    from wrctl.plan import make_plan, nothing_yet

    text = BASE.replace('"10.0.0.2"]', '"10.0.0.2", "10.0.0.3"]').replace("{state}", PG)
    targets = load_targets(_write(tmp_path, text))
    events: list[str] = []
    session = SimpleNamespace(
        open=lambda place: FakeRollout(place.host, events),
        report=lambda target, message: events.append(f"report {target}: {message}"),
        options=SimpleNamespace(health_timeout_s=1.0),
    )

    def install(self: object, rollout: FakeRollout, bundle: object, credentials: object) -> str:
        events.append(f"install {rollout.name}")
        return f"old-{rollout.name}"

    def gate(self: object, address: str) -> None:
        events.append(f"gate {address}")
        if address.startswith("10.0.0.2"):
            raise ManagerUnreachable(f"manager at {address}: not answering")

    monkeypatch.setattr(apply._Apply, "install", install)
    monkeypatch.setattr(apply._Apply, "_manager_gate", gate)
    run = apply._Apply(make_plan(targets, nothing_yet()), session)  # type: ignore[arg-type]
    with pytest.raises(ManagerUnreachable) as info:
        bundles = [SimpleNamespace(digest=f"sha256:{i:064x}") for i in range(3)]
        run.deploy_managers(bundles)  # type: ignore[arg-type]
    assert [e for e in events if not e.startswith("report")] == [
        "install 10.0.0.1",
        "restart 10.0.0.1",
        "gate 10.0.0.1:9000",
        "run 10.0.0.1: cat /wr/manager/data/secrets.key",  # the key every manager shares
        "install 10.0.0.2",
        "restart 10.0.0.2",
        "gate 10.0.0.2:9000",
        "switch 10.0.0.2 old-10.0.0.2",
        "restart 10.0.0.2",
    ]  # 10.0.0.3 untouched: the first still serves the new release, the third the old one
    assert "switched back to release old-10.0.0.2" in str(info.value)
    assert "report manager 10.0.0.2:9000: rolled back to release old-10.0.0.2" in events
    # What the 2nd.. managers' hosts get before install.sh runs: the first one's key.
    shipped = run.host_secrets("manager")
    assert shipped["manager/data/secrets.key"] == b"S3CRETKEY\n"
    assert shipped["manager/data/secrets.env"] == b"WR_SECRETS_KEY=S3CRETKEY\n"
    assert "manager/data/pgpass" not in shipped  # the DSN has no password


def _rpc_error(code: object, details: str) -> Exception:
    """What a failed grpc call raises: a grpc.RpcError that is also a grpc.Call."""
    import grpc

    class Failed(grpc.RpcError, grpc.Call):  # type: ignore[misc]
        def code(self) -> object:
            return code

        def details(self) -> str:
            return details

        def initial_metadata(self) -> None: ...
        def trailing_metadata(self) -> None: ...
        def is_active(self) -> bool:
            return False

        def time_remaining(self) -> None: ...
        def cancel(self) -> bool:
            return False

        def add_callback(self, callback: object) -> bool:
            return False

    return Failed()


def test_a_manager_going_away_mid_call_is_not_a_refused_handshake(cluster: Path) -> None:
    import grpc

    from wrctl.credentials import CredentialsError, refusal

    credentials = resolve_credentials(load_cluster(cluster))
    gone = _rpc_error(grpc.StatusCode.UNAVAILABLE, "Stream removed (Socket closed)")
    assert refusal(gone, "a:1", credentials, "GetClusterState") is None  # type: ignore[arg-type]
    handshake = _rpc_error(grpc.StatusCode.UNAVAILABLE, "Socket closed")
    refused = refusal(handshake, "a:1", credentials, "GetClusterState")  # type: ignore[arg-type]
    assert isinstance(refused, CredentialsError)

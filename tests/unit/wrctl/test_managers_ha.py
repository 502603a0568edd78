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

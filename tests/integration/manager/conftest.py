"""Fixtures: an in-process manager over real gRPC (mutual TLS) on loopback, on SQLite and on
PostgreSQL; an operator stub for admin calls and node stubs for engine calls."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.manager.config import ManagerConfig
from runtime.manager.server import ManagerServer
from tests.infra.pki import ClusterPki
from tests.infra.postgres import PostgresServer
from tests.integration.manager.builders import KEY, KEY_ENV, START, place


class FakeClock:
    """A clock the test moves by hand, so expiry tests need no waiting."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@contextlib.contextmanager
def fresh_database(server: PostgresServer) -> Iterator[str]:
    """A new database on the session's PostgreSQL, dropped afterwards (dropping is what keeps
    the cluster's shutdown checkpoint small after a hundred tests)."""
    name = f"mgr_{uuid.uuid4().hex[:16]}"
    dsn = server.create_database(name)
    try:
        yield dsn
    finally:
        server.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store: a SQLite file, or a new database on the session's PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path}/state/manager.db"
        return
    with fresh_database(request.getfixturevalue("postgres")) as dsn:
        yield dsn


@pytest.fixture
def manager_config(state_url: str, pki: ClusterPki) -> ManagerConfig:
    return ManagerConfig(
        listen_address="127.0.0.1:0",
        admin_address="127.0.0.1:0",
        state=state_url,
        engine_heartbeat_timeout_secs=30,
        module_heartbeat_timeout_secs=10,
        tls=pki.manager_config_tls(),
    )


@pytest.fixture
async def start_manager(
    manager_config: ManagerConfig, clock: FakeClock
) -> AsyncIterator[Callable[..., ManagerServer]]:
    """Build (not start) managers on the test's store; every one is stopped at teardown."""
    made: list[ManagerServer] = []

    def build(config: ManagerConfig | None = None, key: str = KEY) -> ManagerServer:
        server = ManagerServer(config or manager_config, environ={KEY_ENV: key}, clock=clock)
        made.append(server)
        return server

    yield build
    for server in made:
        await server.stop(grace=0.5)


@pytest.fixture
async def manager(start_manager: Callable[..., ManagerServer]) -> ManagerServer:
    server = start_manager()
    await server.start()
    return server


@pytest.fixture
async def stub(
    manager: ManagerServer, pki: ClusterPki
) -> AsyncIterator[pb_grpc.ManagerServiceStub]:
    """The operator's stub (wrctl): every admin call."""
    async with pki.operator_aio_channel(f"127.0.0.1:{manager.grpc_port}") as channel:
        yield pb_grpc.ManagerServiceStub(channel)


NodeStubs = Callable[[str], pb_grpc.ManagerServiceStub]


@pytest.fixture
async def node_stub(manager: ManagerServer, pki: ClusterPki) -> AsyncIterator[NodeStubs]:
    """node_stub("node-b"): the stub an engine of that node uses (its node certificate)."""
    channels = []

    def make(node: str) -> pb_grpc.ManagerServiceStub:
        channel = pki.node_aio_channel(f"127.0.0.1:{manager.grpc_port}", node)
        channels.append(channel)
        return pb_grpc.ManagerServiceStub(channel)

    yield make
    for channel in channels:
        await channel.close()


@pytest.fixture
async def node(
    stub: pb_grpc.ManagerServiceStub, node_stub: NodeStubs
) -> pb_grpc.ManagerServiceStub:
    """Node node-a's stub, after an applied release placed DEFAULT_MODULES (with their secret
    grants) on node-a, so the builders' registrations are accepted."""
    await place(stub, "node-a")
    return node_stub("node-a")

"""Several real wr-manager processes on one PostgreSQL database (active-active), with the
operator's and nodes' async stubs to each of them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from runtime.api import wruntime_pb2_grpc as pb_grpc
from tests.infra.pki import ClusterPki
from tests.infra.postgres import PostgresServer
from tests.integration.manager.conftest import fresh_database
from tests.integration.manager.test_process import ManagerProcess


@dataclass
class Managers:
    """`count` managers sharing `dsn`; stubs are opened per call and closed at teardown."""

    tmp: Path
    pki: ClusterPki
    dsn: str
    extra: str
    processes: list[ManagerProcess] = field(default_factory=list)
    _channels: list[grpc.aio.Channel] = field(default_factory=list)

    def add(self) -> ManagerProcess:
        process = ManagerProcess(
            self.tmp / f"manager{len(self.processes)}", self.pki, self.dsn, self.extra
        )
        self.processes.append(process)
        return process

    def address(self, index: int) -> str:
        return f"127.0.0.1:{self.processes[index].grpc_port}"

    def operator(self, index: int, name: str = "tester") -> pb_grpc.ManagerServiceStub:
        channel = self.pki.operator_aio_channel(self.address(index), name)
        self._channels.append(channel)
        return pb_grpc.ManagerServiceStub(channel)

    def node(self, index: int, node: str = "node-a") -> pb_grpc.ManagerServiceStub:
        channel = self.pki.node_aio_channel(self.address(index), node)
        self._channels.append(channel)
        return pb_grpc.ManagerServiceStub(channel)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close(None)
        self._channels.clear()

    def stop(self) -> None:
        for process in self.processes:
            if process.proc is not None:
                process.proc.stop()


StartManagers = Callable[..., Managers]


@pytest.fixture
async def managers(
    tmp_path: Path, pki: ClusterPki, postgres: PostgresServer
) -> AsyncIterator[StartManagers]:
    """managers(count, extra=manager.toml lines, dsn=None) -> `count` started managers on a
    fresh database of the session's PostgreSQL (or on `dsn`)."""
    made: list[Managers] = []
    with fresh_database(postgres) as fresh:

        def start(count: int, extra: str = "", dsn: str | None = None) -> Managers:
            group = Managers(tmp_path / f"group{len(made)}", pki, dsn or fresh, extra)
            made.append(group)
            for _ in range(count):
                group.add().start_ready()
            return group

        yield start
        for group in made:
            await group.close()
            group.stop()

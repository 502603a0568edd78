"""A small real cluster for the job tests: wr-manager processes (SQLite or PostgreSQL) that
dispatch through a real wr-proxy to real engines running the worker component.

The node is "node-test"; an applied release places example.worker@1.0.0 (the real digest of
the built component) on it, so its engines register through the proxy as in production.
Leases, backoffs and polls are short so the tests run in seconds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from tests.infra.pki import ClusterPki
from tests.infra.process import wait_until
from tests.integration.engine.conftest import Engine, module_toml
from tests.integration.engine.conftest import start_engine as start_engine  # the fixture
from tests.integration.manager.builders import digest
from tests.integration.manager.test_process import ManagerProcess
from tests.integration.proxy.support import FakeManager, ProxyProcess

NODE = "node-test"
WORKER = "example.worker@1.0.0"
# Short everything: a retry waits 0.2-0.4 s, a lost attempt's lease ends 1 s after its timeout.
JOBS_TOML = """
[jobs]
retry_base_secs = 0.2
retry_cap_secs = 0.4
lease_grace_secs = 1.0
poll_secs = 0.1
timeout_secs = 10
"""


@dataclass
class _ManagerAddress:
    """What ProxyProcess needs of a manager: its address and the cluster's PKI."""

    address: str
    pki: ClusterPki


@dataclass
class JobCluster:
    """Managers, the node's proxy and its engines. `operator` talks to managers[0]."""

    tmp: Path
    pki: ClusterPki
    wasm: Path
    start_engine: Callable[..., Engine]
    state: str
    # 3 s: the tests see a lost engine soon; the bench raises it (a loaded machine must not
    # drop a live engine from the routing table mid-measurement).
    heartbeat_timeout_secs: int = 3
    managers: list[ManagerProcess] = field(default_factory=list)
    engines: list[Engine] = field(default_factory=list)
    proxy: ProxyProcess | None = None
    _channels: list[grpc.Channel] = field(default_factory=list)

    def add_manager(self, extra: str = "") -> ManagerProcess:
        index = len(self.managers)
        proxy_port = self.proxy.port if self.proxy else 0
        manager = ManagerProcess(
            self.tmp / f"manager{index}",
            self.pki,
            self.state,
            f'local_proxy_address = "http://127.0.0.1:{proxy_port}"\n'
            f"engine_heartbeat_timeout_secs = {self.heartbeat_timeout_secs}\n" + extra + JOBS_TOML,
        )
        self.managers.append(manager)
        return manager

    def start(self, managers: int = 1, engines: int = 1, extra: str = "") -> JobCluster:
        """The proxy, `managers` managers (the proxy's is the first) and `engines` engines."""
        self.proxy = None
        manager = self.add_manager(extra)
        (self.tmp / "proxy").mkdir()
        self.proxy = ProxyProcess(
            self.tmp / "proxy",
            cast(FakeManager, _ManagerAddress(f"127.0.0.1:{manager.grpc_port}", self.pki)),
            f'[node]\nname = "{NODE}"\n',
        )
        # The proxy's port was not known when the first manager's config was written.
        manager.config.write_text(
            manager.config.read_text().replace(
                "http://127.0.0.1:0", f"http://127.0.0.1:{self.proxy.port}"
            )
        )
        for _ in range(managers - 1):
            self.add_manager(extra)
        for m in self.managers:
            m.start_ready()
        self.place()
        self.proxy.start()
        for _ in range(engines):
            self.add_engine()
        return self

    def place(self) -> None:
        """Record the release placing the worker on the node (as wrctl apply does)."""
        stub = self.operator()
        lock = stub.AcquireApplyLock(pb.AcquireApplyLockRequest(holder="tester")).lock.lock_id
        release = pb.ReleaseRecord(
            target=NODE,
            bundle_digest=digest("jobs-bundle"),
            module_digests={WORKER: "sha256:" + hashlib.sha256(self.wasm.read_bytes()).hexdigest()},
            runtime_version="0.1.0",
            applied_by="tester@host",
        )
        stub.RecordRelease(pb.RecordReleaseRequest(release=release, lock_id=lock))
        stub.ReleaseApplyLock(pb.ReleaseApplyLockRequest(lock_id=lock))

    def add_engine(self, **module: Any) -> Engine:
        assert self.proxy is not None
        engine = self.start_engine(
            module_toml("worker", self.wasm, **module),
            workers=2,
            proxy=f"http://127.0.0.1:{self.proxy.port}",
            control=f"127.0.0.1:{self.proxy.control_port}",
        )
        self.engines.append(engine)
        count = len(self.engines)
        wait_until(
            lambda: self.healthy_engines() >= count,
            30,
            f"{count} engine(s) of the worker to be healthy in the routing table",
        )
        # ...and the proxy to have that table, so the first attempt finds them.
        table = self.operator().GetRoutingTable(pb.GetRoutingTableRequest()).table
        self.proxy.wait_table(table.version)
        return engine

    def healthy_engines(self) -> int:
        engines = self.operator().ListEngines(pb.ListEnginesRequest()).engines
        return sum(1 for e in engines if e.healthy and all(m.healthy for m in e.modules))

    def operator(self, index: int = 0) -> pb_grpc.ManagerServiceStub:
        channel = self.pki.operator_channel(f"127.0.0.1:{self.managers[index].grpc_port}")
        self._channels.append(channel)
        return pb_grpc.ManagerServiceStub(channel)

    def submit(self, job_type: str, payload: Any = None, index: int = 0, **fields: Any) -> str:
        body = json.dumps(payload).encode() if payload is not None else b""
        request = pb.SubmitJobRequest(
            worker_namespace="example",
            worker_name="worker",
            job_type=job_type,
            payload=body,
            **fields,
        )
        return str(self.operator(index).SubmitJob(request).job_id)

    def status(self, job_id: str) -> pb.GetJobStatusResponse:
        return self.operator().GetJobStatus(pb.GetJobStatusRequest(job_id=job_id))

    def wait_done(self, job_id: str, deadline_s: float = 30) -> pb.GetJobStatusResponse:
        def done() -> pb.GetJobStatusResponse | None:
            status = self.status(job_id)
            return status if status.status in (pb.JOB_STATE_COMPLETE, pb.JOB_STATE_DEAD) else None

        return cast(pb.GetJobStatusResponse, wait_until(done, deadline_s, f"job {job_id} to end"))

    def runs(self) -> list[tuple[str, str, int]]:
        """(job id, job type, attempt) of every attempt the engines' worker logged."""
        found = []
        for engine in self.engines:
            for record in engine.log_records():
                text = str(record.get("message") or record.get("msg") or "")
                if text.startswith("job-run "):
                    _, job_id, job_type, attempt = text.split()
                    found.append((job_id, job_type, int(attempt)))
        return found

    def kill_engine(self, engine: Engine) -> None:
        """SIGKILL the engine and its workers at once (no deregistration)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(engine.process.pid, signal.SIGKILL)

    def close(self) -> None:
        for channel in self._channels:
            channel.close()
        if self.proxy is not None:
            self.proxy.stop()
        for manager in self.managers:
            if manager.proc is not None:
                manager.proc.stop()


@pytest.fixture
def job_cluster(
    tmp_path: Path,
    pki: ClusterPki,
    components: dict[str, Path],
    start_engine: Callable[..., Engine],
) -> Iterator[Callable[..., JobCluster]]:
    """job_cluster(managers=1, engines=1, state="sqlite"|postgres dsn, extra=manager.toml
    lines) -> a started JobCluster."""
    made: list[JobCluster] = []

    def make(state: str = "sqlite", **kwargs: Any) -> JobCluster:
        cluster = JobCluster(tmp_path, pki, components["worker"], start_engine, state)
        made.append(cluster)
        return cluster.start(**kwargs)

    yield make
    for cluster in made:
        cluster.close()

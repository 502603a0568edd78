"""Failover with real processes: two managers on PostgreSQL, a wr-proxy that knows both, the
echo example in a wr-engine behind it, and steady traffic while the proxy's manager is killed."""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from tests.infra.pki import ClusterPki
from tests.infra.process import wait_until
from tests.integration.engine.conftest import TRACING, Engine, module_toml
from tests.integration.engine.conftest import start_engine as start_engine  # the fixture
from tests.integration.ha.conftest import Managers, StartManagers
from tests.integration.manager.builders import digest
from tests.integration.proxy.support import FakeManager, ProxyProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")
NODE = "node-test"
ECHO = "example.echo@1.0.0"
DESTINATION = "http://example.echo/echo.EchoService/Echo"
BODY = b"\n\x02hi"  # EchoRequest(message="hi"); the answer is the same bytes


@dataclass
class _ManagerAddress:
    """What ProxyProcess needs of a manager (the first address; the list goes in its toml)."""

    address: str
    pki: ClusterPki


def _digest(wasm: Path) -> str:
    return "sha256:" + hashlib.sha256(wasm.read_bytes()).hexdigest()


async def _place(group: Managers, wasm_digest: str) -> None:
    """Record the release placing the echo module (its real digest) on the node."""
    operator = group.operator(0)
    lock = (await operator.AcquireApplyLock(pb.AcquireApplyLockRequest(holder="t"))).lock
    release = pb.ReleaseRecord(
        target=NODE,
        bundle_digest=digest("ha-bundle"),
        module_digests={ECHO: wasm_digest},
        runtime_version="0.1.0",
        applied_by="tester@host",
    )
    await operator.RecordRelease(pb.RecordReleaseRequest(release=release, lock_id=lock.lock_id))
    await operator.ReleaseApplyLock(pb.ReleaseApplyLockRequest(lock_id=lock.lock_id))


class Traffic:
    """Threads sending echo requests through the proxy back to back; every outcome kept."""

    def __init__(self, port: int, threads: int = 4) -> None:
        self.port = port
        self.results: list[tuple[float, float, int]] = []  # (start, end, status; 0 = error)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                headers = {"x-wr-destination": DESTINATION}
                conn.request("POST", "/echo.EchoService/Echo", BODY, headers)
                response = conn.getresponse()
                ok = response.read() == BODY
                status = response.status if ok else -response.status
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                status = 0
            with self._lock:
                self.results.append((start, time.monotonic(), status))
        conn.close()

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def count(self) -> int:
        with self._lock:
            return len(self.results)


async def test_killing_the_proxys_manager_fails_no_request(
    managers: StartManagers,
    pki: ClusterPki,
    components: dict[str, Path],
    start_engine: Callable[..., Engine],
    tmp_path: Path,
) -> None:
    group = managers(2)
    await _place(group, _digest(components["echo"]))
    addresses = [group.address(0), group.address(1)]
    (tmp_path / "proxy").mkdir()
    proxy = ProxyProcess(
        tmp_path / "proxy",
        cast(FakeManager, _ManagerAddress(addresses[0], pki)),
        f'[node]\nname = "{NODE}"\n',
        manager_addresses=addresses,
    )
    proxy.start()

    def engine() -> Engine:
        return start_engine(
            module_toml("echo", components["echo"], capabilities=TRACING),
            proxy=f"http://127.0.0.1:{proxy.port}",
            control=f"127.0.0.1:{proxy.control_port}",
        )

    def healthy_engines(index: int) -> list[pb.EngineStatus]:
        found = group.processes[index].channel()
        try:
            listed = pb_grpc.ManagerServiceStub(found).ListEngines(pb.ListEnginesRequest())
            return [e for e in listed.engines if e.healthy and all(m.healthy for m in e.modules)]
        finally:
            found.close()

    try:
        engine()
        wait_until(lambda: len(healthy_engines(0)) == 1, 30, "the echo engine to be healthy")
        wait_until(
            lambda: proxy.request(DESTINATION, "POST", body=BODY)[0] == 200,
            10,
            "the proxy to route to the engine",
        )
        used = addresses.index(proxy.health()["manager"])
        survivor = 1 - used

        with Traffic(proxy.port) as traffic:
            wait_until(lambda: traffic.count() >= 50, 20, "steady traffic")
            killed_at = time.monotonic()
            killed_wall = time.time()
            manager = group.processes[used].proc
            assert manager is not None
            os.killpg(manager.pid, signal.SIGKILL)
            # A second engine starting now registers through the survivor.
            engine()
            registered = time.monotonic() - killed_at
            wait_until(
                lambda: len(healthy_engines(survivor)) == 2, 30, "the new engine to be healthy"
            )
            # The first engine keeps heartbeating, through the survivor.
            wait_until(
                lambda: all(
                    e.last_heartbeat.ToMicroseconds() / 1e6 > killed_wall
                    for e in healthy_engines(survivor)
                ),
                15,
                "both engines to heartbeat through the survivor",
            )
            after = traffic.count()
            wait_until(lambda: traffic.count() >= after + 50, 20, "traffic after the failover")
        in_flight = sum(1 for s, e, _ in traffic.results if s <= killed_at <= e)
        failed = [r for r in traffic.results if r[2] != 200]
        print(
            f"requests={len(traffic.results)} failed={len(failed)} in_flight_at_kill={in_flight}"
            f" registration_after_kill_s={registered:.2f}"
        )
        # The data path never needs a manager: not even the requests in flight failed.
        assert failed == []
        health = proxy.health()
        assert health["manager"] == addresses[survivor]
        assert health["manager_failovers"] >= 1
    finally:
        proxy.stop()

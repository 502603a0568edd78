"""The real `wr-manager` process: restart keeps state, heartbeat expiry in real time,
admin endpoints, and startup errors."""

from __future__ import annotations

import contextlib
import json
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import MANAGER_TLS_NAME, sync_channel
from tests.infra.otel import SpanCollector
from tests.infra.pki import ClusterPki
from tests.infra.process import ManagedProcess, free_port, wait_until
from tests.integration.manager.builders import (
    KEY,
    KEY_ENV,
    OTHER_KEY,
    module,
    placement,
    registration,
    release,
)
from tests.integration.manager.conftest import fresh_database

WR_MANAGER = Path(sys.executable).parent / "wr-manager"
DEADLINE_S = 20.0


class ManagerProcess:
    """One wr-manager config (ports, store) that can be started and stopped repeatedly."""

    def __init__(self, tmp: Path, pki: ClusterPki, state: str, extra: str = "", **tls: str) -> None:
        self.tmp = tmp
        self.pki = pki
        tmp.mkdir(parents=True)
        self.grpc_port = free_port()
        self.admin_port = free_port()
        self.config = tmp / "manager.toml"
        table = {**pki.manager_config_tls(), **tls}
        self.config.write_text(
            f'listen_address = "127.0.0.1:{self.grpc_port}"\n'
            f'admin_address = "127.0.0.1:{self.admin_port}"\n'
            f'data_dir = "data"\nstate = "{state}"\n{extra}'
            "[tls]\n" + "".join(f'{key} = "{value}"\n' for key, value in table.items())
        )
        self.runs = 0
        self.proc: ManagedProcess | None = None

    def start(self, key: str | None = KEY) -> ManagedProcess:
        self.runs += 1
        env = {} if key is None else {KEY_ENV: key}
        proc = ManagedProcess(
            [str(WR_MANAGER), "--config", str(self.config)],
            self.tmp / f"manager-{self.runs}.log",
            env=env,
            name="wr-manager",
        )
        if key is None:
            proc.env[KEY_ENV] = ""
        self.proc = proc.start()
        return proc

    def start_ready(self, key: str = KEY) -> ManagedProcess:
        proc = self.start(key)
        proc.wait_ready(f"http://127.0.0.1:{self.admin_port}/healthz", DEADLINE_S)
        return proc

    def channel(self) -> grpc.Channel:
        """The operator's channel (wrctl)."""
        return self.pki.operator_channel(f"127.0.0.1:{self.grpc_port}")

    def node_channel(self, node: str = "node-a") -> grpc.Channel:
        """The channel an engine of `node` registers over."""
        return sync_channel(f"127.0.0.1:{self.grpc_port}", self.pki.node(node), MANAGER_TLS_NAME)

    def get(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.admin_port}{path}"
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()


@pytest.fixture
def manager_process(tmp_path: Path, pki: ClusterPki) -> Iterator[Callable[..., ManagerProcess]]:
    made: list[ManagerProcess] = []

    def make(state: str = "sqlite", extra: str = "", **tls: str) -> ManagerProcess:
        made.append(ManagerProcess(tmp_path / f"manager{len(made)}", pki, state, extra, **tls))
        return made[-1]

    yield make
    for process in made:
        if process.proc is not None:
            process.proc.stop()


def _place(stub: pb_grpc.ManagerServiceStub, node: str = "node-a") -> None:
    """Record an applied release placing the builders' modules on `node` (as wrctl apply)."""
    lock = stub.AcquireApplyLock(pb.AcquireApplyLockRequest(holder="tester")).lock.lock_id
    stub.RecordRelease(pb.RecordReleaseRequest(release=placement(node), lock_id=lock))
    stub.ReleaseApplyLock(pb.ReleaseApplyLockRequest(lock_id=lock))


def _exit_code(proc: ManagedProcess) -> int:
    code = (
        wait_until(lambda: proc.returncode is not None, DEADLINE_S, "wr-manager to exit")
        and proc.returncode
    )
    assert code is not None
    return code


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_restart_keeps_state(
    store: str, manager_process: Callable[..., ManagerProcess], request: pytest.FixtureRequest
) -> None:
    with contextlib.ExitStack() as stack:
        state = "sqlite"
        if store == "postgres":
            state = stack.enter_context(fresh_database(request.getfixturevalue("postgres")))
        manager = manager_process(state)
        _restart_and_compare(manager)
        if store == "sqlite":
            assert (manager.tmp / "data" / "manager.db").is_file()


def _restart_and_compare(manager: ManagerProcess) -> None:
    proc = manager.start_ready()
    with manager.channel() as channel, manager.node_channel() as node_channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        stub.SetSecret(pb.SetSecretRequest(namespace="example", key="api-key", value="v1"))
        lock = stub.AcquireApplyLock(pb.AcquireApplyLockRequest(holder="alice")).lock.lock_id
        stub.RecordRelease(pb.RecordReleaseRequest(release=release(), lock_id=lock))
        node = pb_grpc.ManagerServiceStub(node_channel)
        node.RegisterEngine(registration(modules=[module(schema=b"fds")]))
        before = stub.GetClusterState(pb.GetClusterStateRequest())
    assert proc.stop() == 0  # SIGTERM is a clean shutdown

    restarted = manager.start_ready()
    with manager.channel() as channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        after = stub.GetClusterState(pb.GetClusterStateRequest())
        assert after.serial == before.serial == 2
        assert after.nodes[0].release == before.nodes[0].release
        assert after.lock == before.lock
        assert [e.registration.engine_id for e in after.nodes[0].engines] == ["engine-1"]
        secrets = stub.ListSecrets(pb.ListSecretsRequest()).secrets
        assert [(s.namespace, s.key) for s in secrets] == [("example", "api-key")]
        assert stub.GetRoutingTable(pb.GetRoutingTableRequest()).table.version == 1
    assert restarted.stop() == 0  # before its database is dropped


def test_heartbeat_expiry_and_recovery_in_real_time(
    manager_process: Callable[..., ManagerProcess],
) -> None:
    manager = manager_process(
        extra="engine_heartbeat_timeout_secs = 1.0\nmodule_heartbeat_timeout_secs = 1.0\n"
    )
    manager.start_ready()
    with manager.channel() as channel, manager.node_channel() as node_channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        node = pb_grpc.ManagerServiceStub(node_channel)
        _place(stub)
        node.RegisterEngine(registration())
        node.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1", healthy_modules=[module()]))
        table = stub.GetRoutingTable(pb.GetRoutingTableRequest()).table
        assert [r.healthy for r in table.rules] == [True]

        def unhealthy() -> pb.RoutingTable | None:
            got = stub.GetRoutingTable(pb.GetRoutingTableRequest(known_version=table.version))
            return got.table if got.HasField("table") else None

        expired = wait_until(unhealthy, 5.0, "the silent engine's route to go unhealthy")
        assert [r.healthy for r in expired.rules] == [False]
        assert not stub.ListEngines(pb.ListEnginesRequest()).engines[0].healthy

        node.Heartbeat(pb.HeartbeatRequest(engine_id="engine-1", healthy_modules=[module()]))
        back = stub.GetRoutingTable(pb.GetRoutingTableRequest()).table
        assert [r.healthy for r in back.rules] == [True]
        assert back.version == expired.version + 1


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def test_metrics_health_and_traces(
    manager_process: Callable[..., ManagerProcess], span_collector: SpanCollector
) -> None:
    # A short timeout makes the monitor (which refreshes the gauges) tick often.
    manager = manager_process(
        extra=f'engine_heartbeat_timeout_secs = 2.0\notlp_endpoint = "{span_collector.endpoint}"\n'
    )
    manager.start_ready()
    status, body = manager.get("/healthz")
    assert status == 200 and json.loads(body) == {"ok": True, "store": "sqlite"}
    with manager.channel() as channel, manager.node_channel() as node_channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        node = pb_grpc.ManagerServiceStub(node_channel)
        _place(stub)
        traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
        node.RegisterEngine(registration(), metadata=[("traceparent", traceparent)])
        with pytest.raises(grpc.RpcError):
            node.DeregisterEngine(pb.DeregisterEngineRequest(engine_id="ghost"))
        with pytest.raises(grpc.RpcError):  # an operator may not register engines
            stub.RegisterEngine(registration("impostor"))

    def metrics_show_engine() -> str | None:
        text = manager.get("/metrics")[1]
        return text if "wr_manager_engines 1.0" in text else None

    text = wait_until(metrics_show_engine, 10.0, "the engines gauge to count the engine")
    assert 'wr_manager_rpcs_total{code="OK",method="RegisterEngine"} 1.0' in text
    assert 'wr_manager_rpcs_total{code="NOT_FOUND",method="DeregisterEngine"} 1.0' in text
    assert 'wr_manager_rpcs_total{code="PERMISSION_DENIED",method="RegisterEngine"} 1.0' in text
    assert (
        'wr_manager_rpc_refusals_total{code="PERMISSION_DENIED",method="RegisterEngine"} 1.0'
        in text
    )
    assert 'wr_manager_rpc_duration_seconds_count{method="RegisterEngine"} 2.0' in text
    assert "wr_manager_engines_healthy 1.0" in text
    assert "wr_manager_routing_table_version 1.0" in text

    # the collector is the session's: other tests' managers export RegisterEngine spans too
    def ours(s: Any) -> bool:
        return bool(s.name == "ManagerService/RegisterEngine" and s.trace_id == TRACE_ID)

    spans = span_collector.wait_for(lambda got: any(ours(s) for s in got), 10.0, "our span")
    span = next(s for s in spans if ours(s))
    assert span.service_name == "wr-manager"
    assert span.parent_span_id == PARENT_ID


def _only_line(proc: ManagedProcess) -> str:
    lines = proc.log_path.read_text().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_missing_key_is_a_one_line_startup_error(
    manager_process: Callable[..., ManagerProcess],
) -> None:
    proc = manager_process().start(key=None)
    assert _exit_code(proc) == 1
    assert _only_line(proc).startswith(f"wr-manager: {KEY_ENV} is not set")


def test_wrong_key_is_a_one_line_startup_error(
    manager_process: Callable[..., ManagerProcess],
) -> None:
    manager = manager_process()
    proc = manager.start_ready()
    with manager.channel() as channel:
        pb_grpc.ManagerServiceStub(channel).SetSecret(
            pb.SetSecretRequest(namespace="example", key="api-key", value="v1")
        )
    proc.stop()
    wrong = manager.start(key=OTHER_KEY)
    assert _exit_code(wrong) == 1
    line = _only_line(wrong)
    assert line.startswith(f"wr-manager: {KEY_ENV} cannot decrypt the stored secrets")
    # The right key still works: nothing was damaged.
    manager.start_ready(KEY)


def test_bad_config_and_unreachable_store_are_clear_errors(
    manager_process: Callable[..., ManagerProcess],
) -> None:
    bad = manager_process(extra="heartbeat_timeout = 3\n")
    proc = bad.start()
    assert _exit_code(proc) == 2
    assert "manager.toml: heartbeat_timeout: Extra inputs are not permitted" in _only_line(proc)

    missing = manager_process(cert_path="/nonexistent/manager.crt")
    proc = missing.start()
    assert _exit_code(proc) == 1
    assert _only_line(proc) == (
        "wr-manager: tls: /nonexistent/manager.crt: cannot read the certificate:"
        " No such file or directory"
    )

    unreachable = manager_process(state="postgresql://wr:pw@127.0.0.1:1/wruntime")
    proc = unreachable.start()
    assert _exit_code(proc) == 1
    line = _only_line(proc)
    assert "cannot connect to PostgreSQL postgresql://wr:***@127.0.0.1:1/wruntime" in line
    assert "pw" not in line.replace("PostgreSQL", "")

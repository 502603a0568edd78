"""bench/manager.py --ha: several wr-manager processes on one PostgreSQL database.

Per count of managers (1, 2, 3): engines register spread over the managers, then
* routing-poll latency (an unchanged-version GetRoutingTable, sent to the managers in turn),
  idle and while the heartbeat load below runs;
* heartbeats/s with CONCURRENCY callers spread over the managers.
Then the failover a proxy sees: a real wr-proxy knowing two managers; the manager it uses is
SIGKILLed and a registration is sent to the proxy's control port right away; the time from
the kill until the survivor lists that engine (the registration went through it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]

import bench.manager as m
from bench._results import Metric
from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import MANAGER_TLS_NAME, NODE_TLS_NAME, aio_channel

CONCURRENCY = 50
FAILOVER_ROUNDS = 5
SETTLE_SECS = 3.0  # > the proxy's max reconnect backoff (manager_link._RECONNECT)


async def _create_database(admin_dsn: str, name: str) -> str:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def _managers(
    root: Path, dsn: str, count: int, pki: m.Pki
) -> Iterator[list[tuple[subprocess.Popen[bytes], int]]]:
    started = []
    try:
        for i in range(count):
            started.append(m._start(root / f"m{i}", dsn, pki.manager))
        yield started
    finally:
        for proc, _ in started:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)


async def _p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


async def _measure(ports: list[int], pki: m.Pki, engines: int, samples: int) -> list[Metric]:
    count = len(ports)
    label = f"ha.managers_{count}"
    async with contextlib.AsyncExitStack() as stack:
        operators = []
        nodes: list[list[pb_grpc.ManagerServiceStub]] = []  # [manager][node]
        for port in ports:
            target = f"127.0.0.1:{port}"
            channel = await stack.enter_async_context(
                aio_channel(target, pki.operator, MANAGER_TLS_NAME)
            )
            operators.append(pb_grpc.ManagerServiceStub(channel))
            per_node = []
            for files in pki.nodes:
                channel = await stack.enter_async_context(
                    aio_channel(target, files, MANAGER_TLS_NAME)
                )
                per_node.append(pb_grpc.ManagerServiceStub(channel))
            nodes.append(per_node)
        await m._place(operators[0], engines)

        def node(i: int) -> pb_grpc.ManagerServiceStub:
            return nodes[i % count][i % m.NODES]

        sem = asyncio.Semaphore(CONCURRENCY)

        async def register(i: int) -> None:
            async with sem:
                await node(i).RegisterEngine(m._registration(i))

        await asyncio.gather(*(register(i) for i in range(engines)))
        await asyncio.gather(*(node(i).Heartbeat(m._beat(i)) for i in range(engines)))
        version = (await operators[0].GetRoutingTable(pb.GetRoutingTableRequest())).table.version

        async def poll_samples(n: int) -> list[float]:
            found = []
            for i in range(n):
                request = pb.GetRoutingTableRequest(known_version=version)
                start = time.perf_counter()
                await nodes[i % count][0].GetRoutingTable(request)
                found.append(time.perf_counter() - start)
            return found

        idle = await _p50(await poll_samples(samples))
        total = samples * 5
        queue = iter(range(total))

        async def worker() -> None:
            for n in queue:
                await node(n).Heartbeat(m._beat(n % engines))

        start = time.perf_counter()
        loaded_task = asyncio.create_task(poll_samples(samples))
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        rate = total / (time.perf_counter() - start)
        loaded = await _p50(await loaded_task)
    return [
        Metric(f"{label}.poll_unchanged_idle_p50", idle, "ms", 5.0),
        Metric(f"{label}.poll_unchanged_under_heartbeats_p50", loaded, "ms"),
        Metric(f"{label}.heartbeats_per_s_c{CONCURRENCY}", rate, "1/s", 333.0, "higher"),
    ]


def _proxy(
    root: Path, pki: m.Pki, addresses: list[str]
) -> tuple[subprocess.Popen[bytes], int, int]:
    ports = {name: m._free_port() for name in ("data", "control", "admin", "peer")}
    node = pki.nodes[0]
    config = root / "proxy.toml"
    config.write_text(
        f'listen_address = "127.0.0.1:{ports["data"]}"\n'
        f'control_address = "127.0.0.1:{ports["control"]}"\n'
        f'admin_address = "127.0.0.1:{ports["admin"]}"\n'
        f"manager_addresses = {json.dumps(addresses)}\n"
        f'[node]\nname = "n0"\npeer_port = {ports["peer"]}\npeer_listen_host = "127.0.0.1"\n'
        f'[node.tls]\ncert_path = "{node.cert_path}"\nkey_path = "{node.key_path}"\n'
        f'ca_cert_path = "{node.ca_cert_path}"\n'
    )
    log = open(root / "proxy.log", "wb")  # noqa: SIM115 - lives as long as the process
    binary = Path(sys.executable).parent / "wr-proxy"
    proc = subprocess.Popen([str(binary), "--config", str(config)], stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            _health(ports["admin"])
            return proc, ports["control"], ports["admin"]
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"wr-proxy did not start: {(root / 'proxy.log').read_text()[-2000:]}")


def _health(admin_port: int) -> dict[str, object]:
    url = f"http://127.0.0.1:{admin_port}/healthz"
    with urllib.request.urlopen(url, timeout=2) as response:
        return dict(json.loads(response.read()))


async def _failover(root: Path, dsn: str, pki: m.Pki) -> list[float]:
    """Seconds from SIGKILL of the proxy's manager to the first registration the survivor
    lists, FAILOVER_ROUNDS times (the killed manager is started again between rounds)."""
    times = []
    with _managers(root, dsn, 2, pki) as started:
        addresses = [f"127.0.0.1:{port}" for _, port in started]
        async with contextlib.AsyncExitStack() as stack:
            operators = [
                pb_grpc.ManagerServiceStub(
                    await stack.enter_async_context(aio_channel(a, pki.operator, MANAGER_TLS_NAME))
                )
                for a in addresses
            ]
            await m._place(operators[0], m.NODES)
            proxy, control, admin = _proxy(root, pki, addresses)
            try:
                engine = pb_grpc.NodeServiceStub(
                    await stack.enter_async_context(
                        aio_channel(f"127.0.0.1:{control}", pki.nodes[0], NODE_TLS_NAME)
                    )
                )
                for round_ in range(FAILOVER_ROUNDS):
                    times.append(
                        await _one_failover(
                            root, dsn, pki, started, operators, engine, admin, round_
                        )
                    )
            finally:
                proxy.terminate()
                proxy.wait(10)
    return times


async def _one_failover(
    root: Path,
    dsn: str,
    pki: m.Pki,
    started: list[tuple[subprocess.Popen[bytes], int]],
    operators: list[pb_grpc.ManagerServiceStub],
    engine: pb_grpc.NodeServiceStub,
    admin: int,
    round_: int,
) -> float:
    ports = [port for _, port in started]
    used = ports.index(int(str(_health(admin)["manager"]).rsplit(":", 1)[1]))
    survivor = 1 - used
    request = m._registration(0)  # engine-0000 of node n0 carries bench.m0 (placed on n0)
    request.registration.engine_id = f"failover-{round_}"
    killed = time.perf_counter()
    started[used][0].kill()
    await engine.RegisterEngine(request, timeout=10)  # accepted; relayed once a manager answers
    while True:
        listed = await operators[survivor].ListEngines(pb.ListEnginesRequest(), timeout=5)
        if any(e.registration.engine_id == request.registration.engine_id for e in listed.engines):
            break
        if time.perf_counter() - killed > 60:
            raise SystemExit("the survivor never listed the registration")
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - killed
    started[used][0].wait(10)
    # Start the killed one again on its port (the proxy's list names it) for the next round,
    # and let the proxy's channel to it leave its reconnect backoff (at most 2 s) first: a
    # round measures a failover to a manager that has been up for a while, as in production.
    started[used] = m._start(root / f"m{used}", dsn, pki.manager, ports[used])
    await asyncio.sleep(SETTLE_SECS)
    return elapsed


def run_ha(admin_dsn: str, quick: bool) -> tuple[list[Metric], dict[str, object]]:
    if admin_dsn == "auto":
        from tests.infra.postgres import _private_cluster

        with _private_cluster() as (server, _):
            return run_ha(server.dsn(), quick)
    engines, samples = (100, 200) if quick else (300, 500)
    metrics: list[Metric] = []
    with tempfile.TemporaryDirectory(prefix="bench-manager-ha-") as tmp:
        root = Path(tmp)
        pki = m.Pki(root / "pki")
        for count in (1, 2, 3):
            dsn = asyncio.run(_create_database(admin_dsn, f"bench_ha_{count}"))
            with _managers(root / f"c{count}", dsn, count, pki) as started:
                ports = [port for _, port in started]
                metrics += asyncio.run(_measure(ports, pki, engines, samples))
        dsn = asyncio.run(_create_database(admin_dsn, "bench_ha_failover"))
        times = asyncio.run(_failover(root / "failover", dsn, pki))
    metrics += [
        Metric("ha.failover_to_registration_median", statistics.median(times), "s", 5.0),
        Metric("ha.failover_to_registration_max", max(times), "s", 5.0),
    ]
    extra = {"engines": engines, "samples": samples, "failover_rounds": times}
    return metrics, extra

"""bench/manager.py: control-plane costs of a real wr-manager process: registration, heartbeat
latency and throughput, routing-table polls (cheap "no change" answers and full tables),
against the gRPC floor (an RPC that touches no store) measured in the same run.

    python bench/manager.py [--quick] [--postgres DSN]

Targets: 1000 engines heartbeating every 3 s (333/s) on SQLite; a "no change" poll <= 5 ms;
a full table of 1000 rules <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._results import Metric, print_table, save
from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc

WR_MANAGER = Path(sys.executable).parent / "wr-manager"
CONCURRENCY = 50


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(root: Path, state: str) -> tuple[subprocess.Popen[bytes], int]:
    grpc_port, admin_port = _free_port(), _free_port()
    config = root / "manager.toml"
    config.write_text(
        f'listen_address = "127.0.0.1:{grpc_port}"\nadmin_address = "127.0.0.1:{admin_port}"\n'
        f'data_dir = "{root}"\nstate = "{state}"\nlog_level = "warning"\n'
    )
    env = {**os.environ, "WR_SECRETS_KEY": base64.b64encode(os.urandom(32)).decode()}
    log = open(root / "manager.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen([str(WR_MANAGER), "--config", str(config)], env=env, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/healthz", timeout=1):
                return proc, grpc_port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"wr-manager did not start: {(root / 'manager.log').read_text()[-2000:]}")


def _registration(i: int) -> pb.RegisterEngineRequest:
    modules = [
        pb.ModuleDescriptor(namespace="bench", name=f"m{i}", version="1.0.0"),
        pb.ModuleDescriptor(namespace="bench", name="shared", version="1.0.0"),
    ]
    return pb.RegisterEngineRequest(
        registration=pb.EngineRegistration(
            engine_id=f"engine-{i:04d}",
            address=f"http://127.0.0.1:{10000 + i}",
            peer_address="https://127.0.0.1:9443",
            node=f"n{i % 10}",
            modules=modules,
        )
    )


def _beat(i: int) -> pb.HeartbeatRequest:
    return pb.HeartbeatRequest(
        engine_id=f"engine-{i:04d}", healthy_modules=_registration(i).registration.modules
    )


async def _p50_ms(call: Callable[[int], Awaitable[object]], count: int) -> float:
    samples = []
    for i in range(count):
        start = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000


async def _floor(stub: pb_grpc.ManagerServiceStub, i: int) -> None:
    # UNIMPLEMENTED: a full round trip that touches no store.
    with contextlib.suppress(grpc.aio.AioRpcError):
        await stub.ListManagers(pb.ListManagersRequest())


async def _throughput(stub: pb_grpc.ManagerServiceStub, engines: int, total: int) -> float:
    queue = iter(range(total))

    async def worker() -> None:
        for n in queue:
            await stub.Heartbeat(_beat(n % engines))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return total / (time.perf_counter() - start)


async def _measure(port: int, engines: int, samples: int, label: str) -> list[Metric]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        floor = await _p50_ms(lambda i: _floor(stub, i), samples)
        register = await _p50_ms(lambda i: stub.RegisterEngine(_registration(i)), engines)
        await asyncio.gather(*(stub.Heartbeat(_beat(i)) for i in range(engines)))
        beat = await _p50_ms(lambda i: stub.Heartbeat(_beat(i % engines)), samples)
        version = (await stub.GetRoutingTable(pb.GetRoutingTableRequest())).table.version
        poll = await _p50_ms(
            lambda i: stub.GetRoutingTable(pb.GetRoutingTableRequest(known_version=version)),
            samples,
        )
        full = await _p50_ms(lambda i: stub.GetRoutingTable(pb.GetRoutingTableRequest()), 20)
        rate = await _throughput(stub, engines, samples * 5)
    rules = 2 * engines
    return [
        Metric(f"{label}.grpc_floor_p50", floor, "ms"),
        Metric(f"{label}.register_p50", register, "ms"),
        Metric(f"{label}.heartbeat_p50", beat, "ms"),
        Metric(f"{label}.heartbeat_vs_floor", beat / floor, "x"),
        Metric(f"{label}.poll_unchanged_p50", poll, "ms", 5.0),
        Metric(f"{label}.poll_vs_floor", poll / floor, "x"),
        Metric(f"{label}.full_table_{rules}_rules_p50", full, "ms", 50.0 * rules / 1000),
        Metric(f"{label}.heartbeats_per_s_c{CONCURRENCY}", rate, "1/s", 333.0, "higher"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer engines and samples (<1 min)")
    parser.add_argument("--postgres", metavar="DSN", help="also measure on this (empty) database")
    args = parser.parse_args()
    engines, samples = (200, 200) if args.quick else (500, 1000)
    stores = [("sqlite", "sqlite")] + ([("postgres", args.postgres)] if args.postgres else [])
    metrics: list[Metric] = []
    for label, state in stores:
        with tempfile.TemporaryDirectory(prefix="bench-manager-") as tmp:
            proc, port = _start(Path(tmp), state)
            try:
                metrics += asyncio.run(_measure(port, engines, samples, label))
            finally:
                proc.terminate()
                proc.wait(10)
    print_table(f"wr-manager ({engines} engines, {samples} samples)", metrics)
    print(f"wrote {save('manager', metrics, {'engines': engines, 'samples': samples})}")


if __name__ == "__main__":
    main()

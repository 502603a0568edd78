"""bench/manager.py: control-plane costs of a real wr-manager process over mutual TLS:
registration, heartbeat latency and throughput, routing-table polls (cheap "no change" answers
and full tables), against the gRPC floor (an RPC that touches no store) measured in the same run.

    python bench/manager.py [--quick] [--postgres DSN]
    python bench/manager.py --ab /tmp/bench-before [--rounds 3] [--quick]

Engines register as their node (node certificates n0..n9 from a throwaway CA made with
wrctl.pki), after an operator recorded the release that places their modules; wrctl's calls use
an operator certificate. `--ab TREE` runs the bench of an older checkout (TREE, e.g. a
`git worktree add /tmp/bench-before <commit>`, run with this venv's python and PYTHONPATH=TREE)
and this one in turns, alternating which goes first, and saves the medians and after/before
ratios as results/manager-ab.json.

Targets: 1000 engines heartbeating every 3 s (333/s) on SQLite; a "no change" poll <= 5 ms;
a full table of 1000 rules <= 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
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
from runtime.identity import MANAGER_TLS_NAME, TlsFiles, aio_channel
from wrctl.pki import ClusterCA, Credentials

WR_MANAGER = Path(sys.executable).parent / "wr-manager"
CONCURRENCY = 50
NODES = 10


def _write(directory: Path, credentials: Credentials) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in credentials.files().items():
        (directory / name).write_bytes(data)
    stem = credentials.stem
    return TlsFiles(directory / f"{stem}.crt", directory / f"{stem}.key", directory / "ca.crt")


class Pki:
    """A throwaway cluster CA with the manager's, an operator's and the nodes' certificates."""

    def __init__(self, root: Path) -> None:
        ca = ClusterCA(root / "ca", "bench")
        self.manager = _write(root / "manager", ca.manager_credentials([]))
        self.operator = _write(root / "operator", ca.operator_credentials("bench"))
        self.nodes = [
            _write(root / f"node-n{n}", ca.node_credentials(f"n{n}", "127.0.0.1"))
            for n in range(NODES)
        ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(
    root: Path, state: str, tls: TlsFiles, grpc_port: int = 0
) -> tuple[subprocess.Popen[bytes], int]:
    """A wr-manager on `grpc_port` (0: a free one) in root; returns it once it answers."""
    grpc_port, admin_port = grpc_port or _free_port(), _free_port()
    root.mkdir(parents=True, exist_ok=True)
    config = root / "manager.toml"
    config.write_text(
        f'listen_address = "127.0.0.1:{grpc_port}"\nadmin_address = "127.0.0.1:{admin_port}"\n'
        f'data_dir = "{root}"\nstate = "{state}"\nlog_level = "warning"\n'
        f'[tls]\ncert_path = "{tls.cert_path}"\nkey_path = "{tls.key_path}"\n'
        f'ca_cert_path = "{tls.ca_cert_path}"\n'
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


def _digest(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def _module(name: str) -> pb.ModuleDescriptor:
    return pb.ModuleDescriptor(
        namespace="bench", name=name, version="1.0.0", digest=_digest(f"bench.{name}@1.0.0")
    )


def _registration(i: int) -> pb.RegisterEngineRequest:
    modules = [_module(f"m{i}"), _module("shared")]
    return pb.RegisterEngineRequest(
        registration=pb.EngineRegistration(
            engine_id=f"engine-{i:04d}",
            address=f"http://127.0.0.1:{10000 + i}",
            peer_address="https://127.0.0.1:9443",
            node=f"n{i % NODES}",
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
    # INVALID_ARGUMENT before any store access: a full round trip that touches no store.
    with contextlib.suppress(grpc.aio.AioRpcError):
        await stub.GetSchema(pb.GetSchemaRequest())


async def _place(operator: pb_grpc.ManagerServiceStub, engines: int) -> None:
    """Record, as wrctl apply does, the releases that place every engine's modules on its node."""
    lock = await operator.AcquireApplyLock(pb.AcquireApplyLockRequest(holder="bench"))
    for n in range(NODES):
        keys = ["bench.shared@1.0.0", *(f"bench.m{i}@1.0.0" for i in range(n, engines, NODES))]
        release = pb.ReleaseRecord(
            target=f"n{n}",
            bundle_digest=_digest("bench"),
            module_digests={key: _digest(key) for key in keys},
            runtime_version="bench",
        )
        await operator.RecordRelease(
            pb.RecordReleaseRequest(release=release, lock_id=lock.lock.lock_id)
        )
    await operator.ReleaseApplyLock(pb.ReleaseApplyLockRequest(lock_id=lock.lock.lock_id))


async def _throughput(nodes: list[pb_grpc.ManagerServiceStub], engines: int, total: int) -> float:
    queue = iter(range(total))

    async def worker() -> None:
        for n in queue:
            await nodes[n % engines % NODES].Heartbeat(_beat(n % engines))

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return total / (time.perf_counter() - start)


async def _measure(port: int, pki: Pki, engines: int, samples: int, label: str) -> list[Metric]:
    target = f"127.0.0.1:{port}"
    async with contextlib.AsyncExitStack() as stack:
        channel = await stack.enter_async_context(
            aio_channel(target, pki.operator, MANAGER_TLS_NAME)
        )
        stub = pb_grpc.ManagerServiceStub(channel)
        nodes = [
            pb_grpc.ManagerServiceStub(
                await stack.enter_async_context(aio_channel(target, files, MANAGER_TLS_NAME))
            )
            for files in pki.nodes
        ]
        await _place(stub, engines)

        def node(i: int) -> pb_grpc.ManagerServiceStub:
            return nodes[i % NODES]  # engine i registers as node n{i % NODES}

        floor = await _p50_ms(lambda i: _floor(stub, i), samples)
        register = await _p50_ms(lambda i: node(i).RegisterEngine(_registration(i)), engines)
        await asyncio.gather(*(node(i).Heartbeat(_beat(i)) for i in range(engines)))
        beat = await _p50_ms(lambda i: node(i % engines).Heartbeat(_beat(i % engines)), samples)
        version = (await node(0).GetRoutingTable(pb.GetRoutingTableRequest())).table.version
        poll = await _p50_ms(
            lambda i: node(i).GetRoutingTable(pb.GetRoutingTableRequest(known_version=version)),
            samples,
        )
        full = await _p50_ms(lambda i: node(i).GetRoutingTable(pb.GetRoutingTableRequest()), 20)
        rate = await _throughput(nodes, engines, samples * 5)
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


def _run(args: argparse.Namespace) -> tuple[list[Metric], dict[str, object]]:
    engines, samples = (200, 200) if args.quick else (500, 1000)
    stores = [("sqlite", "sqlite")] + ([("postgres", args.postgres)] if args.postgres else [])
    metrics: list[Metric] = []
    with tempfile.TemporaryDirectory(prefix="bench-manager-pki-") as pki_dir:
        pki = Pki(Path(pki_dir))
        for label, state in stores:
            with tempfile.TemporaryDirectory(prefix="bench-manager-") as tmp:
                proc, port = _start(Path(tmp), state, pki.manager)
                try:
                    metrics += asyncio.run(_measure(port, pki, engines, samples, label))
                finally:
                    proc.terminate()
                    proc.wait(10)
    print_table(f"wr-manager, mutual TLS ({engines} engines, {samples} samples)", metrics)
    return metrics, {"engines": engines, "samples": samples, "tls": True}


def _one_run(command: list[str], env: dict[str, str], results: Path) -> dict[str, float]:
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    data = json.loads(results.read_text())
    return {name: float(m["value"]) for name, m in data["metrics"].items()}


def _ab(args: argparse.Namespace) -> None:
    """Interleaved rounds of the older tree's bench (A) and this one (B) on the same machine."""
    before_tree = Path(args.ab).resolve()
    flags = ["--quick"] if args.quick else []
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with tempfile.TemporaryDirectory(prefix="bench-manager-ab-") as tmp:
        after_json = Path(tmp) / "after.json"
        runs = {
            "before": (
                [sys.executable, str(before_tree / "bench" / "manager.py"), *flags],
                {**base_env, "PYTHONPATH": str(before_tree)},
                before_tree / "bench" / "results" / "manager.json",
            ),
            "after": (
                [sys.executable, __file__, *flags, "--results-file", str(after_json)],
                base_env,
                after_json,
            ),
        }
        samples: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for r in range(args.rounds):
            order = ("before", "after") if r % 2 == 0 else ("after", "before")
            for side in order:
                print(f"round {r + 1}/{args.rounds}: {side}", flush=True)
                samples[side].append(_one_run(*runs[side]))
    medians = {
        side: {
            name: statistics.median(run[name] for run in runs_)
            for name in runs_[0]
            if all(name in run for run in runs_)
        }
        for side, runs_ in samples.items()
    }
    metrics: list[Metric] = []
    for name, after in medians["after"].items():
        before = medians["before"].get(name)
        if before is None or name.endswith(("_vs_floor",)):
            continue
        unit = "1/s" if name.endswith("_per_s_c50") else "ms"
        # Rounds are paired (run back to back), so the median of per-round ratios shrugs off a
        # machine that was busier in one round than another.
        paired = statistics.median(
            a[name] / b[name] for a, b in zip(samples["after"], samples["before"], strict=True)
        )
        metrics += [
            Metric(f"before.{name}", before, unit),
            Metric(f"after.{name}", after, unit),
            Metric(f"ratio.{name}", after / before, "x"),
            Metric(f"paired_ratio.{name}", paired, "x"),
        ]
    print_table(
        f"wr-manager before (insecure) vs after (mutual TLS), {args.rounds} rounds", metrics
    )
    extra = {"rounds": args.rounds, "quick": args.quick, "before_tree": str(before_tree)}
    print(f"wrote {save('manager-ab', metrics, {**extra, 'runs': samples})}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer engines and samples (<1 min)")
    parser.add_argument("--postgres", metavar="DSN", help="also measure on this (empty) database")
    parser.add_argument(
        "--ha",
        metavar="ADMIN_DSN",
        help="several managers on PostgreSQL (creates databases with this DSN's role);"
        ' "auto" starts a private PostgreSQL (the tests\' helper); saves results/manager-ha.json',
    )
    parser.add_argument("--ab", metavar="TREE", help="interleave with the bench of this checkout")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds (with --ab)")
    parser.add_argument("--results-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ab:
        _ab(args)
        return
    if args.ha:
        from bench._manager_ha import run_ha

        metrics, extra = run_ha(args.ha, args.quick)
        print_table("wr-manager, several managers on one PostgreSQL", metrics)
        print(f"wrote {save('manager-ha', metrics, extra)}")
        return
    metrics, extra = _run(args)
    if args.results_file:  # an A/B round: keep results/manager.json for full runs
        args.results_file.write_text(
            json.dumps({"metrics": {m.name: {"value": m.value} for m in metrics}})
        )
        return
    print(f"wrote {save('manager', metrics, extra)}")


if __name__ == "__main__":
    main()

"""Job throughput and latency: a real wr-manager (SQLite) dispatching through a real wr-proxy
to 1 and 2 engines running the worker component's no-op job, against the same module's
request throughput through the same proxy; and, at idle, the time from submit to start.

    .venv/bin/python -m bench.jobs [--jobs 600] [--seconds 5] [--idle 100] [--rounds 3]
        [--postgres auto|DSN] [--ab TREE]

The cluster is the one tests/integration/jobs builds (its helpers are reused here).
`--rounds N`: N rounds on fresh clusters, each metric the median (the per-round values are
kept). `--postgres`: the manager on PostgreSQL ("auto": a private server started like the
tests', tests/infra/postgres.py, which runs with fsync off) instead of SQLite. `--ab TREE`:
rounds of an older checkout's runtime (TREE, e.g. `git archive` of the base commit; this
bench's code runs against it) interleaved with this tree's, paired ratios of the two.
Results: bench/results/jobs.json (jobs-postgres.json), with --ab jobs-ab.json (-postgres).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import http.client
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._results import Metric, print_table, save
from runtime.api import wruntime_pb2 as pb
from runtime.manager.validation import MAX_JOB_LIST
from tests.infra.pki import CLUSTER, ClusterPki
from tests.infra.process import ManagedProcess, cache_dir, free_port
from tests.integration.engine.conftest import REPO, Engine
from tests.integration.jobs.conftest import JobCluster
from tests.integration.proxy.support import metric_sample
from wrctl.pki import ClusterCA

CLIENTS = 8  # concurrent request clients, and concurrent job submitters
Round = tuple[list[Metric], dict[str, Any]]  # one round's metrics, and its CPU figures


def _engine_starter(
    tmp: Path, pki: ClusterPki, started: list[ManagedProcess]
) -> Callable[..., Engine]:
    def start(modules: str, workers: int = 2, proxy: str = "", control: str = "") -> Engine:
        port = free_port()
        files = pki.node("node-test")
        config = tmp / f"engine-{port}.toml"
        config.write_text(
            f'listen_address = "127.0.0.1:{port}"\nworkers = {workers}\n'
            f'cache_dir = "{cache_dir() / "components"}"\n\n[node]\n'
            f'proxy_address = "{proxy}"\nname = "node-test"\ncontrol_address = "{control}"\n'
            f'[node.tls]\ncert_path = "{files.cert_path}"\nkey_path = "{files.key_path}"\n'
            f'ca_cert_path = "{files.ca_cert_path}"\n\n' + modules
        )
        proc = ManagedProcess(
            [sys.executable, "-m", "runtime.engine.cli", "--config", config],
            tmp / f"engine-{port}.log",
            name="wr-engine",
            cwd=REPO,
        )
        proc.start()
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        proc.wait_ready(f"{base}/__health", deadline_s=60)
        return Engine(proc, base, config)

    return start


@contextmanager
def cluster(engines: int, extra: str = "", state: str = "sqlite") -> Iterator[JobCluster]:
    from runtime.engine.component_cache import ComponentCache
    from tests.infra.components import compiled_cache_dir
    from wrctl.build.cached import build_cached

    wasm = build_cached(REPO / "tests" / "integration" / "engine" / "guests" / "worker")
    ComponentCache(compiled_cache_dir()).ensure(wasm)
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp_name:
        tmp = Path(tmp_name)
        pki = ClusterPki(ClusterCA(tmp / "ca", CLUSTER), tmp)
        started: list[ManagedProcess] = []
        made = JobCluster(tmp, pki, wasm, _engine_starter(tmp, pki, started), state)
        made.heartbeat_timeout_secs = 30  # a loaded machine must not drop a live engine
        try:
            # [jobs] as the job tests set it (short polls and retries; a no-op job fails only
            # when its engine is dropped, and then the run fails: see job_rate)
            yield made.start(engines=engines, extra=extra)
        finally:
            made.close()
            for proc in started:
                proc.stop()


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live children."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(_tree_cpu(int(child)) for child in children)


def cpu_by_service(made: JobCluster) -> dict[str, float]:
    assert made.proxy is not None and made.managers[0].proc is not None
    return {
        "manager": _tree_cpu(made.managers[0].proc.pid),
        "proxy": _tree_cpu(made.proxy.process.pid),
        "engines": sum(_tree_cpu(e.process.pid) for e in made.engines),
    }


def _per_unit(before: dict[str, float], after: dict[str, float], units: int) -> dict[str, float]:
    """CPU milliseconds per request or job, by service."""
    return {k: round((after[k] - before[k]) * 1e3 / units, 3) for k in before}


def request_rate(made: JobCluster, seconds: float) -> float:
    """Requests/s of POST /noop through the proxy, CLIENTS keep-alive clients."""
    assert made.proxy is not None
    port = made.proxy.port
    stop = time.monotonic() + seconds
    counts = [0] * CLIENTS

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"x-wr-destination": "http://example.worker/noop", "content-length": "0"}
        while time.monotonic() < stop:
            conn.request("POST", "/noop", headers=headers)
            response = conn.getresponse()
            response.read()
            assert response.status == 204, response.status
            counts[i] += 1
        conn.close()

    start = time.monotonic()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - start)


def _ended(made: JobCluster) -> float:
    """How many jobs completed or died so far (a death ends the wait too, and fails the run)."""
    text = made.managers[0].get("/metrics")[1]
    return sum(
        metric_sample(text, "wr_manager_job_attempts_total", outcome=outcome) or 0.0
        for outcome in ("complete", "dead")
    )


def job_rate(made: JobCluster, count: int) -> float:
    """Jobs/s: `count` no-op jobs submitted by CLIENTS submitters, from the first submit to
    the last completion. The end is the newest `updated_at` of the batch as the manager stored
    it, so the completion poll can be slow (each /metrics costs the manager ~2 ms of CPU, which
    a 10 ms poll charged to the jobs); beyond a ListJobs page the poll's own time is used."""
    before = _ended(made)
    stubs = [made.operator() for _ in range(CLIENTS)]
    request = pb.SubmitJobRequest(worker_namespace="example", worker_name="worker", job_type="noop")
    start_wall, start = time.time(), time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(lambda i: stubs[i % CLIENTS].SubmitJob(request), range(count)))
    deadline = start + 300
    while _ended(made) < before + count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} jobs not complete within 300 s")
        time.sleep(0.1)
    polled = time.monotonic() - start
    if count > MAX_JOB_LIST:
        return count / polled
    listed = stubs[0].ListJobs(pb.ListJobsRequest(limit=count)).jobs
    dead = [j for j in listed if j.status != pb.JOB_STATE_COMPLETE]
    if dead:
        raise RuntimeError(f"{len(dead)} of {count} jobs died, e.g.: {dead[0].error_message}")
    last = max(j.updated_at.ToNanoseconds() for j in listed) / 1e9
    return count / (last - start_wall)


def idle_latency(made: JobCluster, count: int) -> tuple[list[float], list[float]]:
    """One no-op job at a time, idle in between: the client's submit -> complete times, and
    the manager's submit -> attempt sent times (its start-delay histogram, as the upper
    bounds of the buckets they fell in: 1, 2.5, 5, 10, 25, 50 ms, ...)."""
    stub = made.operator()
    request = pb.SubmitJobRequest(worker_namespace="example", worker_name="worker", job_type="noop")
    before = _delay_buckets(made)
    round_trips = []
    for _ in range(count):
        start = time.monotonic()
        job_id = stub.SubmitJob(request).job_id
        status = pb.GetJobStatusRequest(job_id=job_id)
        while stub.GetJobStatus(status).status != pb.JOB_STATE_COMPLETE:
            time.sleep(0.001)
        round_trips.append(time.monotonic() - start)
        time.sleep(0.02)  # idle between jobs
    after = _delay_buckets(made)
    delays: list[float] = []
    previous = 0.0
    for bound in sorted(after):
        in_bucket = (after[bound] - before.get(bound, 0.0)) - previous
        delays += [bound] * int(in_bucket)
        previous += in_bucket
    return round_trips, delays


def _delay_buckets(made: JobCluster) -> dict[float, float]:
    """le -> cumulative count of the manager's start-delay histogram."""
    text = made.managers[0].get("/metrics")[1]
    name = "wr_manager_job_start_delay_seconds_bucket{"
    found = {}
    for line in text.splitlines():
        if line.startswith(name):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            found[float(le)] = float(line.rsplit(" ", 1)[1])
    return found


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(args: argparse.Namespace, states: Iterator[str]) -> Round:
    """One round: a fresh cluster per engine count (its store from `states`)."""
    metrics: list[Metric] = []
    extra: dict[str, Any] = {}
    for engines in (1, 2):
        with cluster(engines, state=next(states)) as made:
            cpu0 = cpu_by_service(made)
            requests = request_rate(made, args.seconds)
            cpu1 = cpu_by_service(made)
            jobs = job_rate(made, args.jobs)
            cpu2 = cpu_by_service(made)
            extra[f"cpu_ms_per_request_{engines}_engine"] = _per_unit(
                cpu0, cpu1, int(requests * args.seconds)
            )
            extra[f"cpu_ms_per_job_{engines}_engine"] = _per_unit(cpu1, cpu2, args.jobs)
            ratio = jobs / requests
            metrics += [
                Metric(f"requests_per_s_{engines}_engine", requests, "req/s", better="higher"),
                Metric(f"jobs_per_s_{engines}_engine", jobs, "jobs/s", better="higher"),
                Metric(f"jobs_vs_requests_{engines}_engine", ratio, "ratio", 0.5, "higher"),
            ]
            if engines == 1:
                round_trips, delays = idle_latency(made, args.idle)
                metrics += [
                    Metric("submit_to_complete_p50_ms", _percentile(round_trips, 0.5) * 1e3, "ms"),
                    Metric("submit_to_complete_p99_ms", _percentile(round_trips, 0.99) * 1e3, "ms"),
                    Metric("submit_to_start_p50_ms", _percentile(delays, 0.5) * 1e3, "ms", 50),
                    Metric("submit_to_start_p99_ms", _percentile(delays, 0.99) * 1e3, "ms"),
                ]
                extra["submit_to_complete_mean_ms"] = statistics.mean(round_trips) * 1e3
    return metrics, extra


@contextmanager
def stores(postgres: str | None) -> Iterator[Iterator[str]]:
    """The manager's `state` for each cluster: "sqlite", or a fresh PostgreSQL database."""
    if not postgres:
        yield itertools.repeat("sqlite")
        return
    import asyncpg

    async def create(dsn: str, name: str) -> str:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return dsn.rsplit("/", 1)[0] + "/" + name

    def fresh(admin: str) -> Iterator[str]:
        for n in itertools.count():
            yield asyncio.run(create(admin, f"bench_jobs_{os.getpid()}_{n}"))

    if postgres != "auto":
        yield fresh(postgres)
        return
    from tests.infra.postgres import _private_cluster

    with _private_cluster() as (server, _):
        yield fresh(server.dsn())


def _median_of(rounds: list[Round]) -> list[Metric]:
    return [
        Metric(
            first.name,
            statistics.median(m[i].value for m, _ in rounds),
            first.unit,
            first.target,
            first.better,
        )
        for i, first in enumerate(rounds[0][0])
    ]


def _spreads(rounds: list[Round]) -> dict[str, list[float]]:
    """metric -> its value in each round."""
    return {m.name: [r[0][i].value for r in rounds] for i, m in enumerate(rounds[0][0])}


def _name(args: argparse.Namespace, ab: bool = False) -> str:
    return "jobs" + ("-ab" if ab else "") + ("-postgres" if args.postgres else "")


def _ab(args: argparse.Namespace) -> None:
    """Interleaved rounds: TREE's runtime (before) and this tree's (after), this bench. Saves
    the paired comparison, and the after rounds as this bench's usual results."""
    trees = {"before": Path(args.ab).resolve(), "after": REPO}
    passed = ["--jobs", str(args.jobs), "--seconds", str(args.seconds), "--idle", str(args.idle)]
    passed += ["--postgres", args.postgres] if args.postgres else []
    runs: dict[str, list[Round]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="bench-jobs-ab-") as tmp:
        for r in range(args.rounds):
            for side in ("before", "after") if r % 2 == 0 else ("after", "before"):
                print(f"round {r + 1}/{args.rounds}: {side}", flush=True)
                out = Path(tmp) / f"{side}-{r}.json"
                tree = trees[side]
                env = {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'sdk'}"}
                command = [sys.executable, __file__, *passed, "--results-file", str(out)]
                subprocess.run(command, env=env, cwd=tree, check=True)
                found = json.loads(out.read_text())
                runs[side].append(([Metric(**m) for m in found["metrics"]], found["extra"]))
    metrics: list[Metric] = []
    for i, first in enumerate(runs["after"][0][0]):
        before = statistics.median(m[i].value for m, _ in runs["before"])
        after = statistics.median(m[i].value for m, _ in runs["after"])
        paired = statistics.median(
            a[i].value / b[i].value
            for (a, _), (b, _) in zip(runs["after"], runs["before"], strict=True)
        )
        metrics += [
            Metric(f"before.{first.name}", before, first.unit),
            Metric(f"after.{first.name}", after, first.unit, first.target, first.better),
            Metric(f"paired_ratio.{first.name}", paired, "x"),
        ]
    print_table(f"jobs: before ({trees['before']}) vs after, {args.rounds} rounds", metrics)
    extra = {"rounds": args.rounds, "jobs": args.jobs, "before_tree": str(trees["before"])}
    per_round = {side: _spreads(rounds) for side, rounds in runs.items()}
    cpu = {
        side: [{k: v for k, v in e.items() if k.startswith("cpu")} for _, e in rounds]
        for side, rounds in runs.items()
    }
    print(save(_name(args, ab=True), metrics, {**extra, "per_round": per_round, "cpu": cpu}))
    _save_rounds(args, runs["after"])


def _save_rounds(args: argparse.Namespace, rounds: list[Round]) -> None:
    """The medians of the rounds as this bench's results, with each round's values."""
    metrics = _median_of(rounds)
    extra: dict[str, Any] = {"jobs": args.jobs, "clients": CLIENTS, "rounds": len(rounds)}
    extra["store"] = "postgres" if args.postgres else "sqlite"
    if len(rounds) > 1:
        extra["per_round"] = _spreads(rounds)
    order = sorted(rounds, key=lambda r: r[0][1].value)  # by jobs/s with 1 engine
    extra.update(order[len(order) // 2][1])  # CPU per unit and the mean: the median round's
    print_table(_name(args), metrics)
    print({k: v for k, v in extra.items() if k.startswith("cpu")})
    print(save(_name(args), metrics, extra))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--idle", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--postgres", metavar="auto|DSN", help="the manager on PostgreSQL")
    parser.add_argument("--ab", metavar="TREE", help="interleave with this checkout's runtime")
    parser.add_argument("--results-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ab:
        _ab(args)
        return
    with stores(args.postgres) as states:
        rounds = [measure(args, states) for _ in range(args.rounds)]
    if args.results_file:  # one round of one side of an A/B
        [(metrics, extra)] = rounds
        found = {"metrics": [dataclasses.asdict(m) for m in metrics], "extra": extra}
        args.results_file.write_text(json.dumps(found))
        return
    _save_rounds(args, rounds)


if __name__ == "__main__":
    main()

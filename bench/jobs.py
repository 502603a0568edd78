"""Job throughput and latency: a real wr-manager (SQLite) dispatching through a real wr-proxy
to 1 and 2 engines running the worker component's no-op job, against the same module's
request throughput through the same proxy; and, at idle, the time from submit to start.

    .venv/bin/python -m bench.jobs [--jobs 600] [--seconds 5] [--idle 100]

The cluster is the one tests/integration/jobs builds (its helpers are reused here).
Results: bench/results/jobs.json.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
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
from tests.infra.pki import CLUSTER, ClusterPki
from tests.infra.process import ManagedProcess, cache_dir, free_port
from tests.integration.engine.conftest import REPO, Engine
from tests.integration.jobs.conftest import JobCluster
from tests.integration.proxy.support import metric_sample
from wrctl.pki import ClusterCA

CLIENTS = 8  # concurrent request clients, and concurrent job submitters


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
def cluster(engines: int, extra: str = "") -> Iterator[JobCluster]:
    from runtime.engine.component_cache import ComponentCache
    from tests.infra.components import compiled_cache_dir
    from wrctl.build.cached import build_cached

    wasm = build_cached(REPO / "tests" / "integration" / "engine" / "guests" / "worker")
    ComponentCache(compiled_cache_dir()).ensure(wasm)
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp_name:
        tmp = Path(tmp_name)
        pki = ClusterPki(ClusterCA(tmp / "ca", CLUSTER), tmp)
        started: list[ManagedProcess] = []
        made = JobCluster(tmp, pki, wasm, _engine_starter(tmp, pki, started), "sqlite")
        try:
            # [jobs] for a bench: the defaults (retries irrelevant: no-op jobs do not fail)
            yield made.start(engines=engines, extra=extra)
        finally:
            made.close()
            for proc in started:
                proc.stop()


def _tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) of a process and its live children."""
    import os

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


def _completed(made: JobCluster) -> float:
    text = made.managers[0].get("/metrics")[1]
    return metric_sample(text, "wr_manager_job_attempts_total", outcome="complete") or 0.0


def job_rate(made: JobCluster, count: int) -> float:
    """Jobs/s: `count` no-op jobs submitted by CLIENTS submitters, from the first submit to
    the last completion."""
    before = _completed(made)
    stubs = [made.operator() for _ in range(CLIENTS)]
    request = pb.SubmitJobRequest(worker_namespace="example", worker_name="worker", job_type="noop")
    start = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(lambda i: stubs[i % CLIENTS].SubmitJob(request), range(count)))
    deadline = start + 300
    while _completed(made) < before + count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{count} jobs not complete within 300 s")
        time.sleep(0.01)
    return count / (time.monotonic() - start)


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--idle", type=int, default=100)
    args = parser.parse_args(argv)
    metrics: list[Metric] = []
    extra: dict[str, Any] = {"jobs": args.jobs, "clients": CLIENTS}
    for engines in (1, 2):
        with cluster(engines) as made:
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
    print_table("jobs", metrics)
    print({k: v for k, v in extra.items() if k.startswith("cpu")})
    print(save("jobs", metrics, extra))


if __name__ == "__main__":
    main()

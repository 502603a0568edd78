"""Jobs end to end: real wr-manager processes dispatching through a real wr-proxy to real
engines running the worker component (tests/integration/engine/guests/worker). Attempts are
counted from the `job-run <id> <type> <attempt>` lines the worker logs in its engine."""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter
from collections.abc import Callable

import pytest

from runtime.api import wruntime_pb2 as pb
from tests.infra.otel import SpanCollector
from tests.infra.process import wait_until
from tests.integration.jobs.conftest import JobCluster
from tests.integration.manager.conftest import fresh_database
from tests.integration.proxy.support import metric_sample

pytestmark = pytest.mark.slow
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


def test_success_stores_the_result_in_a_span_of_the_submitters_trace(
    job_cluster: Callable[..., JobCluster], span_collector: SpanCollector
) -> None:
    cluster = job_cluster(extra=f'otlp_endpoint = "{span_collector.endpoint}"\n')
    job_id = cluster.submit(
        "echo", {"hello": "world"}, traceparent=f"00-{TRACE_ID}-{PARENT_SPAN}-01"
    )
    status = cluster.wait_done(job_id)
    assert status.status == pb.JOB_STATE_COMPLETE, status.error_message
    assert json.loads(status.result) == {"hello": "world"}
    assert status.attempt == 1, status.error_message
    assert cluster.runs() == [(job_id, "echo", 1)]
    span = span_collector.wait_for_span("job echo")
    assert (span.trace_id, span.parent_span_id) == (TRACE_ID, PARENT_SPAN)
    assert span.attributes["wr.job.id"] == job_id
    assert span.attributes["wr.job.outcome"] == "complete"
    metrics = cluster.managers[0].get("/metrics")[1]

    def sample(name: str, **labels: str) -> float | None:
        return metric_sample(metrics, name, **labels)

    assert sample("wr_manager_job_attempts_total", outcome="complete") == 1
    assert sample("wr_manager_job_attempt_duration_seconds_count") == 1

    def depth_counted() -> str | None:
        text = cluster.managers[0].get("/metrics")[1]
        return text if metric_sample(text, "wr_manager_jobs", state="complete") == 1 else None

    metrics = wait_until(depth_counted, 5, "the queue-depth gauge to count the completed job")
    assert sample("wr_manager_jobs", state="pending") == 0


def test_retry_then_success_and_exhaustion_to_dead(
    job_cluster: Callable[..., JobCluster],
) -> None:
    cluster = job_cluster(engines=0)
    cluster.add_engine(worker_max_attempts=4)  # the version's default, below a request's
    flaky = cluster.submit("flaky", {"succeed_on": 3}, max_attempts=5)
    doomed = cluster.submit("fail", max_attempts=2)
    by_config = cluster.submit("fail")
    status = cluster.wait_done(flaky)
    assert status.status == pb.JOB_STATE_COMPLETE, status.error_message
    assert (status.attempt, json.loads(status.result)) == (3, {"attempt": 3})
    dead = cluster.wait_done(doomed)
    assert (dead.status, dead.attempt, dead.max_attempts) == (pb.JOB_STATE_DEAD, 2, 2)
    assert "HTTP 422" in dead.error_message  # not a 5xx: the module's breaker stays closed
    assert "always fails (attempt 2)" in dead.error_message
    configured = cluster.wait_done(by_config)
    assert (configured.status, configured.attempt) == (pb.JOB_STATE_DEAD, 4)
    runs = Counter(job_id for job_id, _, _ in cluster.runs())
    assert (runs[flaky], runs[doomed], runs[by_config]) == (3, 2, 4)
    metrics = cluster.managers[0].get("/metrics")[1]
    assert metric_sample(metrics, "wr_manager_jobs_dead_total") == 2
    assert metric_sample(metrics, "wr_manager_job_attempts_total", outcome="retry") == 2 + 1 + 3


def test_idempotent_submit_runs_once(job_cluster: Callable[..., JobCluster]) -> None:
    cluster = job_cluster()
    first = cluster.submit("echo", {"n": 1}, idempotency_key="order-17")
    again = cluster.submit("echo", {"n": 2}, idempotency_key="order-17")
    assert again == first
    status = cluster.wait_done(first)
    assert json.loads(status.result) == {"n": 1}
    other = cluster.wait_done(cluster.submit("echo", {"n": 3}, idempotency_key="order-18"))
    assert other.status == pb.JOB_STATE_COMPLETE
    assert [job_id for job_id, _, _ in cluster.runs()].count(first) == 1


def test_engine_killed_mid_job_the_job_completes_on_another(
    job_cluster: Callable[..., JobCluster],
) -> None:
    cluster = job_cluster(engines=2)
    job_id = cluster.submit("sleep", {"secs": 60, "slow_on": [1]}, max_attempts=5, timeout_secs=30)
    wait_until(lambda: cluster.runs(), 20, "the first attempt to start")
    [busy] = [e for e in cluster.engines if any("job-run" in str(r) for r in e.log_records())]
    cluster.kill_engine(busy)
    status = cluster.wait_done(job_id, deadline_s=40)
    assert status.status == pb.JOB_STATE_COMPLETE, status.error_message
    assert status.attempt >= 2
    assert status.result.decode() == f"slept on attempt {status.attempt}"


def test_manager_killed_mid_job_the_attempt_is_claimed_again_after_its_lease(
    job_cluster: Callable[..., JobCluster],
) -> None:
    cluster = job_cluster()
    manager = cluster.managers[0]
    # Attempt 1 sleeps 6 s; its lease is its timeout (8 s) plus the grace (1 s).
    job_id = cluster.submit("sleep", {"secs": 6, "slow_on": [1]}, timeout_secs=8)
    wait_until(lambda: cluster.runs(), 20, "the first attempt to start")
    claimed_at = time.monotonic()
    assert manager.proc is not None
    manager.proc.stop(grace_s=0)  # SIGTERM then SIGKILL at once: no finalize
    manager.start_ready()
    status = cluster.wait_done(job_id, deadline_s=30)
    assert status.status == pb.JOB_STATE_COMPLETE, status.error_message
    assert status.attempt == 2
    assert "lease expired" in status.error_message
    assert time.monotonic() - claimed_at >= 8  # not before the lease ended
    assert [attempt for _, _, attempt in cluster.runs()] == [1, 2]


def test_a_module_submits_and_polls_through_the_proxy(
    job_cluster: Callable[..., JobCluster],
) -> None:
    cluster = job_cluster()
    assert cluster.proxy is not None

    def call(path: str, body: bytes) -> dict[str, object]:
        assert cluster.proxy is not None
        status, _, reply = cluster.proxy.request(f"http://example.worker{path}", "POST", body=body)
        assert status == 200, reply
        return dict(json.loads(reply))

    spec = {"namespace": "example", "module": "worker", "job_type": "echo", "payload": "hi"}
    submitted = call("/submit", json.dumps(spec).encode())
    job_id = str(submitted["job_id"])
    found = wait_until(
        lambda: (s := call("/status", job_id.encode()))["state"] == "complete" and s,
        20,
        "the job to complete, seen from the guest",
    )
    assert (found["result"], found["attempt"]) == ("hi", 1)
    assert cluster.status(job_id).submitted_by == "example.worker"

    too_big = call("/submit", json.dumps({**spec, "payload": "x" * (1024 * 1024 + 1)}).encode())
    assert too_big["status"] == 400
    assert "over the job size limit of 1048576 bytes" in str(too_big["error"])
    unknown = call("/status", b"no-such-job")
    assert unknown["status"] == 404


def test_job_paths_are_not_public_and_the_gateway_is_for_engines_only(
    job_cluster: Callable[..., JobCluster],
) -> None:
    from runtime import wire

    assert wire.route_path_problem(wire.JOB_PATH_PREFIX + "echo") is not None
    cluster = job_cluster()
    assert cluster.proxy is not None
    # Public ingress drops x-wr-* headers and routes by its own table (no /__ paths), and
    # the router sends wr-jobs calls from the peer or public listeners away with 403; an
    # engine's own call reaches the gateway (and the manager answers: no such job).
    status, _, body = cluster.proxy.request(f"http://{wire.JOBS_HOST}/status/x")
    assert (status, body.startswith(b"manager: job_id: no job")) == (404, True)


def _scheduled_jobs(cluster: JobCluster, name: str) -> list[pb.GetJobStatusResponse]:
    jobs = cluster.operator().ListJobs(pb.ListJobsRequest(worker_namespace="example")).jobs
    return sorted(
        (j for j in jobs if j.schedule == name), key=lambda j: j.created_at.ToNanoseconds()
    )


def _fired(cluster: JobCluster, name: str, count: int) -> list[pb.GetJobStatusResponse] | None:
    found = _scheduled_jobs(cluster, name)
    return found if len(found) >= count else None


def _schedule(name: str, interval: int) -> pb.UpsertScheduleRequest:
    return pb.UpsertScheduleRequest(
        name=name,
        worker_namespace="example",
        worker_name="worker",
        worker_version="1.0.0",
        job_type="echo",
        interval_secs=interval,
        payload=b'"tick"',
    )


def test_schedule_fires_at_once_then_every_interval(
    job_cluster: Callable[..., JobCluster],
) -> None:
    cluster = job_cluster()
    before = time.time()
    cluster.operator().UpsertSchedule(_schedule("every-2s", 2))
    jobs = wait_until(lambda: _fired(cluster, "every-2s", 4), 15, "four fires of the schedule")
    fired = [j.created_at.ToNanoseconds() / 1e9 for j in jobs]
    assert fired[0] - before < 1.0  # the first fire is immediate
    gaps = [b - a for a, b in itertools.pairwise(fired)]
    assert all(1.8 <= gap <= 2.5 for gap in gaps), gaps
    wait_until(
        lambda: all(cluster.status(j.job_id).status == pb.JOB_STATE_COMPLETE for j in jobs),
        10,
        "the scheduled jobs to complete",
    )
    [listed] = cluster.operator().ListSchedules(pb.ListSchedulesRequest()).schedules
    assert listed.HasField("last_fired_at") and listed.HasField("next_fire_at")
    assert (listed.consecutive_failures, listed.last_error) == (0, "")
    metrics = cluster.managers[0].get("/metrics")[1]
    assert (metric_sample(metrics, "wr_manager_schedule_lag_seconds_count") or 0) >= 4


def test_schedules_survive_a_manager_restart(job_cluster: Callable[..., JobCluster]) -> None:
    cluster = job_cluster()
    manager = cluster.managers[0]
    cluster.operator().UpsertSchedule(_schedule("every-2s", 2))
    wait_until(lambda: _scheduled_jobs(cluster, "every-2s"), 10, "the first fire")
    assert manager.proc is not None
    manager.proc.stop()
    manager.start_ready()
    [listed] = cluster.operator().ListSchedules(pb.ListSchedulesRequest()).schedules
    assert listed.name == "every-2s" and listed.HasField("last_fired_at")
    count = len(_scheduled_jobs(cluster, "every-2s"))
    wait_until(
        lambda: len(_scheduled_jobs(cluster, "every-2s")) >= count + 2,
        10,
        "the schedule to keep firing after the restart",
    )


@pytest.mark.postgres
def test_two_managers_on_one_postgres_dispatch_each_job_and_fire_once(
    job_cluster: Callable[..., JobCluster], postgres: object
) -> None:
    with fresh_database(postgres) as dsn:  # type: ignore[arg-type]
        cluster = job_cluster(state=dsn, managers=2, engines=1)
        try:
            _two_managers(cluster)
        finally:
            cluster.close()  # before the database is dropped


def _two_managers(cluster: JobCluster) -> None:
    cluster.operator().UpsertSchedule(_schedule("every-1s", 1))
    submitted = [cluster.submit("echo", {"n": n}, index=n % 2) for n in range(40)]
    started = time.monotonic()
    for job_id in submitted:
        assert cluster.wait_done(job_id).status == pb.JOB_STATE_COMPLETE
    wait_until(lambda: _fired(cluster, "every-1s", 5), 15, "five fires of the schedule")
    cluster.operator().DeleteSchedule(pb.DeleteScheduleRequest(name="every-1s"))
    elapsed = time.monotonic() - started
    scheduled = [j.job_id for j in _scheduled_jobs(cluster, "every-1s")]
    for job_id in scheduled:
        cluster.wait_done(job_id)
    runs = Counter(job_id for job_id, _, _ in cluster.runs())
    assert all(runs[job_id] == 1 for job_id in submitted), runs
    assert all(runs[job_id] == 1 for job_id in scheduled), runs
    # one fire per second at most, however many managers: never two for one due time
    assert 4 <= len(scheduled) <= elapsed + 2, (len(scheduled), elapsed)
    completes = [
        metric_sample(m.get("/metrics")[1], "wr_manager_job_attempts_total", outcome="complete")
        or 0
        for m in cluster.managers
    ]
    assert sum(completes) == len(submitted) + len(scheduled)
    assert all(count > 0 for count in completes), completes  # both took part

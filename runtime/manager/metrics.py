"""Prometheus metrics of one manager (its own registry, so several can share a process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ManagerMetrics:
    """RPC counts and latency by method and code; engine and routing gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.rpcs = Counter(
            "wr_manager_rpcs",
            "gRPC calls handled, by method and status code",
            ["method", "code"],
            registry=self.registry,
        )
        self.rpc_seconds = Histogram(
            "wr_manager_rpc_duration_seconds",
            "gRPC handling time, by method",
            ["method"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.refusals = Counter(
            "wr_manager_rpc_refusals",
            "Calls refused for the caller's identity (UNAUTHENTICATED, PERMISSION_DENIED),"
            " by method and code",
            ["method", "code"],
            registry=self.registry,
        )
        self.engines = Gauge("wr_manager_engines", "Registered engines", registry=self.registry)
        self.engines_healthy = Gauge(
            "wr_manager_engines_healthy",
            "Registered engines with a heartbeat within the timeout",
            registry=self.registry,
        )
        self.routing_version = Gauge(
            "wr_manager_routing_table_version",
            "Current routing table version",
            registry=self.registry,
        )
        self.health_flips = Counter(
            "wr_manager_rule_health_changes",
            "Default routing rules whose health flipped, by new state",
            ["healthy"],
            registry=self.registry,
        )

        self.jobs = Gauge(
            "wr_manager_jobs",
            "Jobs in the store by state (queue depth: pending and running)",
            ["state"],
            registry=self.registry,
        )
        self.job_attempts = Counter(
            "wr_manager_job_attempts",
            "Job attempts this manager dispatched, by outcome (complete, retry, dead, stale:"
            " finished after its lease was taken over, result dropped)",
            ["outcome"],
            registry=self.registry,
        )
        self.jobs_dead = Counter(
            "wr_manager_jobs_dead",
            "Jobs that ended dead here (attempts used up, or the last lease expired)",
            registry=self.registry,
        )
        self.job_seconds = Histogram(
            "wr_manager_job_attempt_duration_seconds",
            "Time from dispatching an attempt to its answer",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.job_start_delay = Histogram(
            "wr_manager_job_start_delay_seconds",
            "From a job becoming due (its submit, or its retry time) to its attempt being sent",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.schedule_fires = Counter(
            "wr_manager_schedule_fires",
            "Schedule fires (jobs created) by this manager, by schedule",
            ["schedule"],
            registry=self.registry,
        )
        self.schedule_lag = Histogram(
            "wr_manager_schedule_lag_seconds",
            "How late a schedule fired after its due time",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )

    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        self.rpcs.labels(method, code).inc()
        self.rpc_seconds.labels(method).observe(seconds)

    def count_refusal(self, method: str, code: str) -> None:
        self.refusals.labels(method, code).inc()

    def count_flips(self, flips: list[tuple[str, bool]]) -> None:
        for _, healthy in flips:
            self.health_flips.labels(str(healthy).lower()).inc()

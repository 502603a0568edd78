"""Schedules as plan resources (`schedule.NAME`): desired from cluster.toml's [[schedule]],
live from the manager's ListSchedules, both as the same flat attributes [pure]."""

from __future__ import annotations

from typing import TYPE_CHECKING

from runtime.wire import module_host
from wrctl.config.model import ScheduleSection
from wrctl.plan.state import Resource

if TYPE_CHECKING:
    from runtime.api import wruntime_pb2 as pb

KIND = "schedule"


def _attributes(
    module: str,
    version: str,
    job_type: str,
    interval_secs: int,
    cron: str,
    payload: bytes,
    timeout_secs: int,
    max_attempts: int,
) -> dict[str, str]:
    return {
        "module": module,
        "version": version or "(any)",
        "job_type": job_type,
        "every": f"{interval_secs}s" if interval_secs else f"cron {cron}",
        "payload": payload.decode("utf-8", "replace"),
        "timeout_secs": str(timeout_secs),
        "max_attempts": str(max_attempts) if max_attempts else "(default)",
    }


def desired(schedule: ScheduleSection) -> Resource:
    attrs = _attributes(
        schedule.module,
        schedule.version or "",
        schedule.job_type,
        schedule.interval_secs or 0,
        schedule.cron or "",
        schedule.payload_bytes(),
        schedule.timeout_secs,
        schedule.max_attempts or 0,
    )
    return Resource(schedule.address, KIND, attrs)


def live(schedule: pb.Schedule) -> Resource:
    attrs = _attributes(
        module_host(schedule.worker_namespace, schedule.worker_name),
        schedule.worker_version,
        schedule.job_type,
        schedule.interval_secs,
        schedule.cron,
        bytes(schedule.payload),
        schedule.timeout_secs,
        schedule.max_attempts,
    )
    return Resource(f"{KIND}.{schedule.name}", KIND, attrs)


def upsert_request(schedule: ScheduleSection) -> pb.UpsertScheduleRequest:
    """What apply sends for a created or changed schedule."""
    from runtime.api import wruntime_pb2 as pb

    namespace, name = schedule.namespace_name
    return pb.UpsertScheduleRequest(
        name=schedule.name,
        worker_namespace=namespace,
        worker_name=name,
        worker_version=schedule.version or "",
        job_type=schedule.job_type,
        interval_secs=schedule.interval_secs or 0,
        cron=schedule.cron or "",
        payload=schedule.payload_bytes(),
        timeout_secs=schedule.timeout_secs,
        max_attempts=schedule.max_attempts or 0,
    )

"""`wrctl jobs` and `wrctl schedules`: submit a job, read one, list jobs and schedules.

The commands in wrctl/commands/ only parse arguments and print; what they send and how a job
or a schedule reads as a row (table or JSON) lives here.
"""

from __future__ import annotations

import base64
import datetime
import json
from typing import TYPE_CHECKING, Any

from runtime.names import InvalidName, check_name, check_version
from runtime.wire import job_type_problem
from wrctl.errors import WrctlError

if TYPE_CHECKING:
    from runtime.api import wruntime_pb2 as pb

STATES = ("pending", "running", "complete", "dead")


def split_module(text: str) -> tuple[str, str]:
    """`namespace.module` -> (namespace, module); WrctlError naming the expected shape."""
    namespace, dot, module = text.partition(".")
    try:
        if not dot:
            raise InvalidName(f"{text!r} is not NAMESPACE.MODULE (like shop.images)")
        return check_name(namespace, "namespace"), check_name(module, "module")
    except InvalidName as exc:
        raise WrctlError(f"module: {exc}") from None


def submit_request(
    module: str,
    job_type: str,
    data: str | None,
    version: str | None,
    max_attempts: int | None,
    idempotency_key: str | None,
) -> pb.SubmitJobRequest:
    """The SubmitJob request for `wrctl jobs submit`; --data must be JSON (sent as its text)."""
    from runtime.api import wruntime_pb2 as pb

    namespace, name = split_module(module)
    problem = job_type_problem(job_type)
    if problem:
        raise WrctlError(f"job type: {problem}")
    if version:
        try:
            check_version(version, "--version")
        except InvalidName as exc:
            raise WrctlError(str(exc)) from None
    payload = b""
    if data is not None:
        try:
            json.loads(data)
        except ValueError as exc:
            raise WrctlError(f"--data is not JSON: {exc}") from None
        payload = data.encode()
    return pb.SubmitJobRequest(
        worker_namespace=namespace,
        worker_name=name,
        worker_version=version or "",
        job_type=job_type,
        payload=payload,
        max_attempts=max_attempts or 0,
        idempotency_key=idempotency_key or "",
    )


def list_request(module: str | None, state: str | None, limit: int) -> pb.ListJobsRequest:
    from runtime.api import wruntime_pb2 as pb

    namespace = name = ""
    if module:
        namespace, name = split_module(module) if "." in module else (module, "")
        if not name:
            try:
                check_name(namespace, "namespace")
            except InvalidName as exc:
                raise WrctlError(f"--module: {exc}") from None
    if state is not None and state not in STATES:
        raise WrctlError(f"--state: {state!r} is not one of {', '.join(STATES)}")
    code = f"JOB_STATE_{(state or 'unspecified').upper()}"
    return pb.ListJobsRequest(worker_namespace=namespace, worker_name=name, state=code, limit=limit)


def state_name(code: int) -> str:
    from runtime.api import wruntime_pb2 as pb

    return pb.JobState.Name(code).removeprefix("JOB_STATE_").lower()


def _when(ts: Any, present: bool = True) -> str | None:
    if not present or (ts.seconds == 0 and ts.nanos == 0):
        return None
    moment: datetime.datetime = ts.ToDatetime(datetime.UTC)
    return moment.isoformat(timespec="milliseconds")


def _payload_text(data: bytes) -> Any:
    """A result as JSON when it is JSON, as text when UTF-8, else base64 (marked)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode()}
    try:
        return json.loads(text)
    except ValueError:
        return text


def job_row(job: pb.GetJobStatusResponse, with_result: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {
        "job_id": job.job_id,
        "module": f"{job.worker_namespace}.{job.worker_name}",
        "version": job.worker_version or None,
        "job_type": job.job_type,
        "state": state_name(job.status),
        "attempt": job.attempt,
        "max_attempts": job.max_attempts,
        "error": job.error_message or None,
        "created_at": _when(job.created_at),
        "updated_at": _when(job.updated_at),
        "next_attempt_at": _when(job.run_at),
        "submitted_by": job.submitted_by or None,
        "schedule": job.schedule or None,
        "idempotency_key": job.idempotency_key or None,
    }
    if with_result:
        row["result"] = _payload_text(job.result) if job.result else None
    return row


def schedule_row(schedule: pb.Schedule) -> dict[str, Any]:
    return {
        "name": schedule.name,
        "module": f"{schedule.worker_namespace}.{schedule.worker_name}",
        "version": schedule.worker_version or None,
        "job_type": schedule.job_type,
        "every": f"{schedule.interval_secs}s" if schedule.interval_secs else schedule.cron,
        "timeout_secs": schedule.timeout_secs,
        "max_attempts": schedule.max_attempts or None,
        "last_fired_at": _when(schedule.last_fired_at, schedule.HasField("last_fired_at")),
        "next_fire_at": _when(schedule.next_fire_at, schedule.HasField("next_fire_at")),
        "last_error": schedule.last_error or None,
        "consecutive_failures": schedule.consecutive_failures,
    }

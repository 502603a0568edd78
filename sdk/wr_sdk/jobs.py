"""Worker jobs: handle them (`@app.job("resize-image")`), submit them, read their status.

A job handler gets a Job (payload bytes, `.json()`, id, attempt) and returns its result
(bytes, str, a JSON-able value or None) or raises: a raise is a failed attempt, retried with
backoff until the job's max_attempts, then the job is dead with the error. Delivery is at
least once, so a handler must be safe to run again for the same job id.

`submit` and `status` go through the node's proxy (http://wr-jobs/...), which relays them to
the manager with the node's identity: the guest holds no credential, and its engine names
the submitting module. Any module may submit to any worker module.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from wr_sdk._host import call
from wr_sdk._http import Request
from wr_sdk._wire import JOB_ATTEMPT_HEADER, JOB_ID_HEADER, JOB_PATH_PREFIX, JOBS_HOST

PENDING, RUNNING, COMPLETE, DEAD = "pending", "running", "complete", "dead"


class JobError(Exception):
    """A submit or status call the gateway or the manager refused (bad field, unknown job,
    payload over the size limit, manager unreachable); `status` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Job:
    """One attempt of a job, as its handler sees it."""

    def __init__(self, request: Request) -> None:
        self._request = request
        self.type = request.route[len(JOB_PATH_PREFIX) :]
        self.id = request.header(JOB_ID_HEADER) or ""
        self.attempt = int(request.header(JOB_ATTEMPT_HEADER) or "1")

    @property
    def payload(self) -> bytes:
        return self._request.body

    def text(self) -> str:
        return self.payload.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    state: str  # pending | running | complete | dead
    result: bytes  # the handler's result once complete
    error: str  # the last failed attempt's error
    attempt: int
    max_attempts: int

    @property
    def done(self) -> bool:
        return self.state in (COMPLETE, DEAD)

    def json(self) -> Any:
        return json.loads(self.result)


def _encode(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str):
        return payload.encode()
    return json.dumps(payload).encode()


def submit(
    namespace: str,
    module: str,
    job_type: str,
    payload: object = b"",
    version: str | None = None,
    max_attempts: int | None = None,
    idempotency_key: str | None = None,
    timeout_secs: int | None = None,
) -> str:
    """Queue a job for module `namespace.module` (its `version` exactly, or any version when
    None); return its id. `payload`: bytes, str (UTF-8) or a JSON-able value. With an
    idempotency key already used for that module, the first job's id is returned."""
    body = {
        "namespace": namespace,
        "module": module,
        "job_type": job_type,
        "payload": base64.b64encode(_encode(payload)).decode(),
        "version": version or "",
        "max_attempts": max_attempts or 0,
        "timeout_secs": timeout_secs or 0,
        "idempotency_key": idempotency_key or "",
    }
    answer = call(
        f"http://{JOBS_HOST}/submit",
        json.dumps(body).encode(),
        headers=[("content-type", "application/json")],
    )
    if not answer.ok:
        raise JobError(answer.status, answer.text().strip())
    return str(answer.json()["job_id"])


def status(job_id: str) -> JobStatus:
    """Where job `job_id` is now (JobError 404 when there is no such job)."""
    answer = call(f"http://{JOBS_HOST}/status/{job_id}", method="GET")
    if not answer.ok:
        raise JobError(answer.status, answer.text().strip())
    found = answer.json()
    return JobStatus(
        job_id=found["job_id"],
        state=found["state"],
        result=base64.b64decode(found["result"]),
        error=found["error"],
        attempt=int(found["attempt"]),
        max_attempts=int(found["max_attempts"]),
    )

"""Worker jobs in the store: submit, claim under a lease, finalize behind the claim's fence.

States: pending -> running (claim_id, lease_until) -> complete | pending (a retry at run_at)
| dead. Every finalize names the claim_id it was given: when the lease expired and another
manager (or a later tick) claimed the job again, the stale holder's finalize matches no row
and is dropped, so a slow attempt can never overwrite a newer one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from runtime.api import wruntime_pb2 as pb
from runtime.manager.errors import NotFound
from runtime.manager.state.timestamps import to_timestamp
from runtime.manager.store import Row, Tx

PENDING, RUNNING, COMPLETE, DEAD = "pending", "running", "complete", "dead"
STATES = (PENDING, RUNNING, COMPLETE, DEAD)
TO_PB = {
    PENDING: pb.JOB_STATE_PENDING,
    RUNNING: pb.JOB_STATE_RUNNING,
    COMPLETE: pb.JOB_STATE_COMPLETE,
    DEAD: pb.JOB_STATE_DEAD,
}
FROM_PB = {v: k for k, v in TO_PB.items()}
DEFAULT_MAX_ATTEMPTS = 3  # when neither the request nor the module version sets one
MAX_ERROR_CHARS = 2000  # of an attempt's error kept with the job
_LOST = "no answer before the lease expired (the engine or the dispatching manager was lost)"

_COLUMNS = (
    "job_id, namespace, module, version, job_type, state, attempt, max_attempts, "
    "timeout_secs, last_error, idempotency_key, traceparent, submitted_by, schedule, run_at, "
    "created_at, updated_at"
)


@dataclass(frozen=True)
class NewJob:
    """A job to store: what a submit or a schedule fire asks for."""

    namespace: str
    module: str
    version: str
    job_type: str
    payload: bytes
    timeout_secs: int
    max_attempts: int  # 0: resolve (the version's configured value, else 3)
    idempotency_key: str = ""
    traceparent: str = ""
    submitted_by: str = ""
    schedule: str = ""


@dataclass(frozen=True)
class Claimed:
    """One attempt a dispatcher now holds the lease of."""

    job_id: str
    claim_id: str
    namespace: str
    module: str
    version: str
    job_type: str
    payload: bytes
    attempt: int
    max_attempts: int
    timeout_secs: int
    traceparent: str
    schedule: str
    due_at: float  # when it became due (its submit, for a first attempt)


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended: `result` when it succeeded, else `error`."""

    job_id: str
    claim_id: str
    result: bytes | None
    error: str = ""


@dataclass(frozen=True)
class Cycle:
    """What one dispatcher round did (ManagerState.job_cycle)."""

    finalized: list[str | None]
    fired: list[Any]  # schedules.Fired (that module imports this one)
    claimed: list[Claimed]
    died: list[tuple[str, str]]


async def finalize_many(
    tx: Tx, outcomes: list[Outcome], now: float, backoff: Callable[[int], float]
) -> list[str | None]:
    """Record each attempt's outcome, in order: a success stores its result, a failure goes
    to fail(). Per outcome the new state, None when its claim is stale. The successes (nearly
    all of them under load) go to the store as one batch; each keeps its fence (job_id,
    claim_id)."""
    done = iter(
        await tx.fetchrow_many(
            _COMPLETE_SQL,
            [(o.job_id, o.claim_id, o.result, now) for o in outcomes if o.result is not None],
        )
    )
    states: list[str | None] = []
    for outcome in outcomes:
        if outcome.result is None:
            states.append(
                await fail(tx, outcome.job_id, outcome.claim_id, outcome.error, now, backoff)
            )
            continue
        row = next(done)
        if row is not None and row["schedule"]:
            await _schedule_outcome(tx, str(row["schedule"]), None)
        states.append(COMPLETE if row is not None else None)
    return states


async def configured_max_attempts(tx: Tx, namespace: str, module: str, version: str) -> int:
    """worker_max_attempts of the module version (of any registered version, the highest, for
    a name-only job); 0 when none is configured."""
    if version:
        row = await tx.fetchrow(
            "SELECT MAX(worker_max_attempts) AS n FROM engine_modules "
            "WHERE namespace = $1 AND name = $2 AND version = $3",
            namespace,
            module,
            version,
        )
    else:
        row = await tx.fetchrow(
            "SELECT MAX(worker_max_attempts) AS n FROM engine_modules "
            "WHERE namespace = $1 AND name = $2",
            namespace,
            module,
        )
    return int(row["n"] or 0) if row is not None else 0


_INSERT_SQL = (
    "INSERT INTO jobs (job_id, namespace, module, version, job_type, payload, state, "
    "attempt, max_attempts, timeout_secs, last_error, idempotency_key, traceparent, "
    "submitted_by, schedule, run_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, "
    "$6, 'pending', 0, $7, $8, '', $9, $10, $11, $12, $13, $13, $13) "
    "ON CONFLICT (namespace, module, idempotency_key) DO NOTHING RETURNING job_id"
)


async def submit(tx: Tx, job: NewJob, now: float) -> tuple[str, bool]:
    """Store a pending job due now; return (job_id, existing). With an idempotency key that
    an earlier job of the same module holds, that job is returned and nothing is stored."""
    return (await submit_many(tx, [job], now))[0]


async def submit_many(tx: Tx, batch: list[NewJob], now: float) -> list[tuple[str, bool]]:
    """submit() each job, in order (a later job of the batch with an earlier one's key gets
    that one's id), the inserts sent to the store as one batch."""
    configured: dict[tuple[str, str, str], int] = {}
    for job in batch:
        where = (job.namespace, job.module, job.version)
        if not job.max_attempts and where not in configured:
            configured[where] = await configured_max_attempts(tx, *where) or DEFAULT_MAX_ATTEMPTS
    ids = [str(uuid.uuid4()) for _ in batch]
    # ON CONFLICT DO NOTHING: two concurrent submits with one key (two managers) both end up
    # returning the row the first one stored, instead of one of them failing.
    inserted = await tx.fetchrow_many(
        _INSERT_SQL,
        [
            (
                job_id,
                job.namespace,
                job.module,
                job.version,
                job.job_type,
                job.payload,
                job.max_attempts or configured[(job.namespace, job.module, job.version)],
                job.timeout_secs,
                job.idempotency_key or None,
                job.traceparent,
                job.submitted_by,
                job.schedule,
                now,
            )
            for job_id, job in zip(ids, batch, strict=True)
        ],
    )
    out: list[tuple[str, bool]] = []
    for job_id, job, row in zip(ids, batch, inserted, strict=True):
        if row is not None:
            out.append((job_id, False))
            continue
        found = await tx.fetchrow(
            "SELECT job_id FROM jobs WHERE namespace = $1 AND module = $2 AND idempotency_key = $3",
            job.namespace,
            job.module,
            job.idempotency_key,
        )
        assert found is not None, "the conflicting job must exist"
        out.append((str(found["job_id"]), True))
    return out


async def claim(
    tx: Tx, now: float, limit: int, claimed_by: str, grace: float, skip_locked: bool
) -> tuple[list[Claimed], list[tuple[str, str]]]:
    """Take up to `limit` due jobs: pending ones whose run_at has come, and running ones whose
    lease expired (their holder died or hung). Each gets a new claim_id and a lease of its
    timeout plus `grace`. A running job whose lease expired on its last attempt is dead.
    Return the claims and the (job_id, schedule) of the jobs that died here."""
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    rows = await tx.fetch(
        "SELECT job_id, state, attempt, max_attempts, timeout_secs, schedule, run_at FROM jobs "
        "WHERE (state = 'pending' AND run_at <= $1) OR (state = 'running' AND lease_until <= $1) "
        f"ORDER BY run_at LIMIT $2{lock}",
        now,
        limit,
    )
    died: list[tuple[str, str]] = []
    take: list[str] = []
    for row in rows:
        job_id = str(row["job_id"])
        if row["state"] == RUNNING and row["attempt"] >= row["max_attempts"]:
            await _to_dead(tx, job_id, f"attempt {row['attempt']}: {_LOST}", now)
            died.append((job_id, str(row["schedule"])))
        else:
            take.append(job_id)
    if not take:
        return [], died
    # One statement for the whole batch, with one claim_id: the fence stays per attempt, as
    # a finalize matches (job_id, claim_id) and claiming a job again gives it a new claim_id.
    claim_id = str(uuid.uuid4())
    marks = ", ".join(f"${i}" for i in range(6, 6 + len(take)))
    changed = await tx.fetch(
        "UPDATE jobs SET state = 'running', attempt = attempt + 1, claim_id = $1, "
        "claimed_by = $2, lease_until = $3 + timeout_secs, updated_at = $4, last_error = "
        "CASE WHEN state = 'running' THEN 'attempt ' || attempt || ': ' || $5 "
        f"ELSE last_error END WHERE job_id IN ({marks}) RETURNING job_id, namespace, module, "
        "version, job_type, payload, attempt, max_attempts, timeout_secs, traceparent, "
        "schedule, run_at",
        claim_id,
        claimed_by,
        now + grace,
        now,
        _LOST,
        *take,
    )
    claims = [
        Claimed(
            job_id=str(row["job_id"]),
            claim_id=claim_id,
            namespace=str(row["namespace"]),
            module=str(row["module"]),
            version=str(row["version"]),
            job_type=str(row["job_type"]),
            payload=bytes(row["payload"]),
            attempt=int(row["attempt"]),
            max_attempts=int(row["max_attempts"]),
            timeout_secs=int(row["timeout_secs"]),
            traceparent=str(row["traceparent"]),
            schedule=str(row["schedule"]),
            due_at=float(row["run_at"]),
        )
        for row in changed
    ]
    return claims, died


_COMPLETE_SQL = (
    "UPDATE jobs SET state = 'complete', result = $3, claim_id = NULL, lease_until = NULL, "
    "updated_at = $4 WHERE job_id = $1 AND claim_id = $2 AND state = 'running' "
    "RETURNING schedule"
)


async def fail(
    tx: Tx, job_id: str, claim_id: str, error: str, now: float, backoff: Callable[[int], float]
) -> str | None:
    """Record a failed attempt: pending again at now + backoff(attempt), or dead when it was
    the last one. Return the new state, or None when the claim is stale."""
    row = await tx.fetchrow(
        "SELECT attempt, max_attempts, schedule FROM jobs "
        "WHERE job_id = $1 AND claim_id = $2 AND state = 'running'",
        job_id,
        claim_id,
    )
    if row is None:
        return None
    error = error[:MAX_ERROR_CHARS]
    if row["attempt"] >= row["max_attempts"]:
        await _to_dead(tx, job_id, error, now)
        if row["schedule"]:
            await _schedule_outcome(tx, str(row["schedule"]), error)
        return DEAD
    await tx.execute(
        "UPDATE jobs SET state = 'pending', last_error = $2, run_at = $3, claim_id = NULL, "
        "lease_until = NULL, updated_at = $4 WHERE job_id = $1",
        job_id,
        error,
        now + backoff(int(row["attempt"])),
        now,
    )
    return PENDING


async def _to_dead(tx: Tx, job_id: str, error: str, now: float) -> None:
    await tx.execute(
        "UPDATE jobs SET state = 'dead', last_error = $2, claim_id = NULL, lease_until = NULL, "
        "updated_at = $3 WHERE job_id = $1",
        job_id,
        error[:MAX_ERROR_CHARS],
        now,
    )


async def _schedule_outcome(tx: Tx, schedule: str, error: str | None) -> None:
    """A scheduled job ended: a success clears the schedule's failure count, a death adds one."""
    if error is None:
        await tx.execute(
            "UPDATE schedules SET consecutive_failures = 0, last_error = '' WHERE name = $1",
            schedule,
        )
    else:
        await tx.execute(
            "UPDATE schedules SET consecutive_failures = consecutive_failures + 1, "
            "last_error = $2 WHERE name = $1",
            schedule,
            error,
        )


async def schedule_deaths(tx: Tx, died: list[tuple[str, str]]) -> None:
    """Count the jobs that died in claim() against their schedules."""
    for job_id, schedule in died:
        if schedule:
            row = await tx.fetchrow("SELECT last_error FROM jobs WHERE job_id = $1", job_id)
            await _schedule_outcome(tx, schedule, str(row["last_error"]) if row else "dead")


async def status(tx: Tx, job_id: str) -> pb.GetJobStatusResponse:
    row = await tx.fetchrow(f"SELECT {_COLUMNS}, result FROM jobs WHERE job_id = $1", job_id)
    if row is None:
        raise NotFound(f"job_id: no job {job_id!r}")
    out = _to_pb(row)
    if row["result"] is not None:
        out.result = bytes(row["result"])
    return out


async def list_jobs(
    tx: Tx, namespace: str, module: str, state: str, limit: int
) -> list[pb.GetJobStatusResponse]:
    """Newest first, filtered by whichever of namespace, module and state are non-empty."""
    where: list[str] = []
    args: list[object] = []
    for column, value in (("namespace", namespace), ("module", module), ("state", state)):
        if value:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    args.append(limit)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    rows = await tx.fetch(
        f"SELECT {_COLUMNS} FROM jobs {clause}ORDER BY created_at DESC LIMIT ${len(args)}", *args
    )
    return [_to_pb(row) for row in rows]


async def depth(tx: Tx) -> dict[str, int]:
    """How many jobs are in each state (every state listed, 0 when none)."""
    rows = await tx.fetch("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
    found = {str(row["state"]): int(row["n"]) for row in rows}
    return {state: found.get(state, 0) for state in STATES}


def _to_pb(row: Row) -> pb.GetJobStatusResponse:
    out = pb.GetJobStatusResponse(
        job_id=row["job_id"],
        status=TO_PB[row["state"]],
        error_message=row["last_error"],
        attempt=row["attempt"],
        max_attempts=row["max_attempts"],
        worker_namespace=row["namespace"],
        worker_name=row["module"],
        worker_version=row["version"],
        job_type=row["job_type"],
        submitted_by=row["submitted_by"],
        schedule=row["schedule"],
        idempotency_key=row["idempotency_key"] or "",
    )
    out.created_at.CopyFrom(to_timestamp(row["created_at"]))
    out.updated_at.CopyFrom(to_timestamp(row["updated_at"]))
    if row["state"] == PENDING:
        out.run_at.CopyFrom(to_timestamp(row["run_at"]))
    return out

"""Schedules in the store: upsert/delete/list (wrctl apply) and firing due ones as jobs.

A fire is one transaction: the due rows are locked (FOR UPDATE SKIP LOCKED on PostgreSQL, the
single writer on SQLite), each gets its job inserted and its next_fire_at advanced, then it
commits. Two managers can therefore never fire the same due time twice, and a manager that
dies mid-fire leaves nothing half done (the transaction rolls back).
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.api import wruntime_pb2 as pb
from runtime.manager.errors import NotFound
from runtime.manager.schedule_times import next_fire
from runtime.manager.state import jobs
from runtime.manager.state.timestamps import to_timestamp
from runtime.manager.store import Row, Tx

_DEFINITION = (
    "namespace",
    "module",
    "version",
    "job_type",
    "interval_secs",
    "cron",
    "payload",
    "timeout_secs",
    "max_attempts",
)


@dataclass(frozen=True)
class Fired:
    schedule: str
    job_id: str
    lag: float  # seconds between the due time and the fire


async def upsert(tx: Tx, req: pb.UpsertScheduleRequest, timeout_secs: int, now: float) -> bool:
    """Create or replace schedule req.name; return whether anything changed. A changed
    definition fires anew: at once for an interval, at the next cron time for a cron."""
    values = (
        req.worker_namespace,
        req.worker_name,
        req.worker_version,
        req.job_type,
        req.interval_secs,
        req.cron,
        bytes(req.payload),
        timeout_secs,
        req.max_attempts,
    )
    row = await tx.fetchrow(
        f"SELECT {', '.join(_DEFINITION)} FROM schedules WHERE name = $1", req.name
    )
    if row is not None and tuple(_plain(row[c]) for c in _DEFINITION) == values:
        return False
    first = next_fire(req.interval_secs, req.cron, now, first=True)
    await tx.execute(
        "INSERT INTO schedules (name, namespace, module, version, job_type, interval_secs, cron, "
        "payload, timeout_secs, max_attempts, next_fire_at, last_fired_at, last_error, "
        "consecutive_failures, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
        "$9, $10, $11, NULL, '', 0, $12, $12) ON CONFLICT (name) DO UPDATE SET namespace = $2, "
        "module = $3, version = $4, job_type = $5, interval_secs = $6, cron = $7, payload = $8, "
        "timeout_secs = $9, max_attempts = $10, next_fire_at = $11, updated_at = $12",
        req.name,
        *values,
        first,
        now,
    )
    return True


def _plain(value: object) -> object:
    return bytes(value) if isinstance(value, bytes | bytearray | memoryview) else value


async def delete(tx: Tx, name: str) -> None:
    if not await tx.execute("DELETE FROM schedules WHERE name = $1", name):
        raise NotFound(f"name: no schedule {name!r}")


async def list_schedules(tx: Tx, namespace: str) -> list[pb.Schedule]:
    if namespace:
        rows = await tx.fetch(
            "SELECT * FROM schedules WHERE namespace = $1 ORDER BY name", namespace
        )
    else:
        rows = await tx.fetch("SELECT * FROM schedules ORDER BY name")
    return [_to_pb(row) for row in rows]


async def fire_due(tx: Tx, now: float, skip_locked: bool) -> list[Fired]:
    """Insert one job per due schedule and move each to its next time (missed times while no
    manager ran are skipped, not fired in a burst)."""
    lock = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
    rows = await tx.fetch(
        f"SELECT * FROM schedules WHERE next_fire_at <= $1 ORDER BY next_fire_at{lock}", now
    )
    fired = []
    for row in rows:
        name = str(row["name"])
        job_id, _ = await jobs.submit(
            tx,
            jobs.NewJob(
                namespace=row["namespace"],
                module=row["module"],
                version=row["version"],
                job_type=row["job_type"],
                payload=bytes(row["payload"]),
                timeout_secs=int(row["timeout_secs"]),
                max_attempts=int(row["max_attempts"]),
                schedule=name,
            ),
            now,
        )
        due = float(row["next_fire_at"])
        following = next_fire(int(row["interval_secs"]), str(row["cron"]), due)
        if following <= now:
            following = next_fire(int(row["interval_secs"]), str(row["cron"]), now)
        await tx.execute(
            "UPDATE schedules SET next_fire_at = $2, last_fired_at = $3 WHERE name = $1",
            name,
            following,
            now,
        )
        fired.append(Fired(name, job_id, now - due))
    return fired


def _to_pb(row: Row) -> pb.Schedule:
    out = pb.Schedule(
        schedule_id=row["name"],
        name=row["name"],
        worker_namespace=row["namespace"],
        worker_name=row["module"],
        worker_version=row["version"],
        job_type=row["job_type"],
        interval_secs=row["interval_secs"],
        cron=row["cron"],
        immediate=not row["cron"],
        payload=bytes(row["payload"]),
        timeout_secs=row["timeout_secs"],
        max_attempts=row["max_attempts"],
        enabled=True,
        last_error=row["last_error"],
        consecutive_failures=row["consecutive_failures"],
    )
    out.next_fire_at.CopyFrom(to_timestamp(row["next_fire_at"]))
    if row["last_fired_at"] is not None:
        out.last_fired_at.CopyFrom(to_timestamp(row["last_fired_at"]))
    return out

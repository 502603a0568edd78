"""The apply lock: one lease at a time, so two `wrctl apply` runs cannot interleave."""

from __future__ import annotations

import uuid

from runtime.api import wruntime_pb2 as pb
from runtime.manager.errors import FailedPrecondition, NotFound
from runtime.manager.state.timestamps import to_timestamp
from runtime.manager.store import Row, Tx

_COLUMNS = "lock_id, holder, reason, acquired_at, expires_at"


def _lock(row: Row) -> pb.ApplyLock:
    return pb.ApplyLock(
        lock_id=row["lock_id"],
        holder=row["holder"],
        reason=row["reason"],
        acquired_at=to_timestamp(row["acquired_at"]),
        expires_at=to_timestamp(row["expires_at"]),
    )


async def current(tx: Tx, now: float) -> pb.ApplyLock | None:
    """The lock held right now (an expired lease counts as free)."""
    row = await tx.fetchrow(f"SELECT {_COLUMNS} FROM apply_lock WHERE expires_at > $1", now)
    return None if row is None else _lock(row)


async def acquire(
    tx: Tx, holder: str, reason: str, ttl: float, now: float
) -> tuple[bool, pb.ApplyLock]:
    """Take the lock when free or expired: (True, ours); else (False, the holder's)."""
    await tx.execute("DELETE FROM apply_lock WHERE expires_at <= $1", now)
    row = await tx.fetchrow(
        f"INSERT INTO apply_lock (slot, {_COLUMNS}) VALUES (1, $1, $2, $3, $4, $5) "
        f"ON CONFLICT (slot) DO NOTHING RETURNING {_COLUMNS}",
        uuid.uuid4().hex,
        holder,
        reason,
        now,
        now + ttl,
    )
    if row is not None:
        return True, _lock(row)
    held = await tx.fetchrow(f"SELECT {_COLUMNS} FROM apply_lock")
    assert held is not None, "apply lock slot taken but unreadable"
    return False, _lock(held)


async def require(tx: Tx, lock_id: str, now: float) -> pb.ApplyLock:
    """The held lock with this id, or FailedPrecondition saying why it is not held."""
    row = await tx.fetchrow(f"SELECT {_COLUMNS} FROM apply_lock")
    if row is not None and row["lock_id"] == lock_id and row["expires_at"] > now:
        return _lock(row)
    if row is not None and row["lock_id"] == lock_id:
        raise FailedPrecondition(f"lock_id: apply lock {lock_id} has expired; acquire it again")
    if row is not None and row["expires_at"] > now:
        raise FailedPrecondition(
            f"lock_id: {lock_id or '(empty)'} is not the held apply lock"
            f" (held by {row['holder']} since {_lock(row).acquired_at.ToJsonString()})"
        )
    raise FailedPrecondition(f"lock_id: {lock_id or '(empty)'} is not held (nobody holds the lock)")


async def renew(tx: Tx, lock_id: str, ttl: float, now: float) -> pb.ApplyLock:
    await require(tx, lock_id, now)
    row = await tx.fetchrow(
        f"UPDATE apply_lock SET expires_at = $2 WHERE lock_id = $1 RETURNING {_COLUMNS}",
        lock_id,
        now + ttl,
    )
    assert row is not None
    return _lock(row)


async def release(tx: Tx, lock_id: str) -> None:
    """Give the lock back (also accepted after expiry, while nobody else took it)."""
    if not await tx.execute("DELETE FROM apply_lock WHERE lock_id = $1", lock_id):
        raise NotFound(f"lock_id: no apply lock {lock_id!r} (released, force-unlocked or taken)")

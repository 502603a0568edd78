"""Release records (what `wrctl apply` last did per target) and the cluster-state read."""

from __future__ import annotations

from runtime.api import wruntime_pb2 as pb
from runtime.manager.errors import NotFound
from runtime.manager.state import apply_lock, counters, engines, routing
from runtime.manager.state.timestamps import to_timestamp
from runtime.manager.store import Tx
from runtime.manager.validation import MANAGER_TARGET
from runtime.version import __version__

PENDING = "pending"


async def record(tx: Tx, release: pb.ReleaseRecord, lock_id: str, now: float) -> int:
    """Record a release of a target (the held lock is required); return the serial.

    "pending" (sent before a node is restarted) replaces the target's pending release and is
    not history. Any other status clears it and lands in the history; an applied or
    rolled-back record also becomes the target's current release and moves the serial, while a
    failed attempt changes nothing live. A pending record does not move the serial either."""
    await apply_lock.require(tx, lock_id, now)
    stored = pb.ReleaseRecord()
    stored.CopyFrom(release)
    stored.applied_at.CopyFrom(to_timestamp(now))
    stored.status = stored.status or "applied"
    blob = stored.SerializeToString(deterministic=True)
    if stored.status == PENDING:
        await tx.execute(
            "INSERT INTO pending_releases (target, record, recorded_at) VALUES ($1, $2, $3) "
            "ON CONFLICT (target) DO UPDATE SET record = $2, recorded_at = $3",
            stored.target,
            blob,
            now,
        )
        return await counters.get(tx, counters.SERIAL)
    await tx.execute("DELETE FROM pending_releases WHERE target = $1", stored.target)
    await tx.execute(
        "INSERT INTO release_history (target, status, record, applied_at) VALUES ($1, $2, $3, $4)",
        stored.target,
        stored.status,
        blob,
        now,
    )
    if stored.status == "failed":
        return await counters.get(tx, counters.SERIAL)
    await tx.execute(
        "INSERT INTO releases (target, record, applied_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (target) DO UPDATE SET record = $2, applied_at = $3",
        stored.target,
        blob,
        now,
    )
    return await counters.bump(tx, counters.SERIAL)


async def history(tx: Tx, target: str, limit: int) -> list[pb.ReleaseRecord]:
    """Newest first; every target when `target` is empty."""
    if target:
        rows = await tx.fetch(
            "SELECT record FROM release_history WHERE target = $1 ORDER BY id DESC LIMIT $2",
            target,
            limit,
        )
    else:
        rows = await tx.fetch("SELECT record FROM release_history ORDER BY id DESC LIMIT $1", limit)
    return [pb.ReleaseRecord.FromString(bytes(row["record"])) for row in rows]


async def delete(tx: Tx, target: str, lock_id: str, now: float) -> int:
    await apply_lock.require(tx, lock_id, now)
    pending = await tx.execute("DELETE FROM pending_releases WHERE target = $1", target)
    if not await tx.execute("DELETE FROM releases WHERE target = $1", target) and not pending:
        raise NotFound(f"target: no release recorded for {target!r}")
    return await counters.bump(tx, counters.SERIAL)


async def cluster_state(
    tx: Tx, now: float, timeouts: engines.Timeouts
) -> pb.GetClusterStateResponse:
    """Serial, releases (applied and pending), live engines per node, explicit routing rules
    and the lock, from one snapshot."""
    response = pb.GetClusterStateResponse(
        serial=await counters.get(tx, counters.SERIAL), manager_version=__version__
    )
    nodes: dict[str, pb.NodeState] = {}
    for row in await tx.fetch("SELECT target, record FROM releases ORDER BY target"):
        release = pb.ReleaseRecord.FromString(bytes(row["record"]))
        if row["target"] == MANAGER_TARGET:
            response.manager_release.CopyFrom(release)
        else:
            nodes[row["target"]] = pb.NodeState(name=row["target"], release=release)
    for row in await tx.fetch("SELECT target, record FROM pending_releases ORDER BY target"):
        pending = pb.ReleaseRecord.FromString(bytes(row["record"]))
        nodes.setdefault(row["target"], pb.NodeState(name=row["target"])).pending.CopyFrom(pending)
    for status in await engines.list_status(tx, now, timeouts):
        node = status.registration.node
        if node:
            nodes.setdefault(node, pb.NodeState(name=node)).engines.append(status)
    response.nodes.extend(nodes[name] for name in sorted(nodes))
    response.explicit_rules.extend(await routing.explicit_rules(tx))
    lock = await apply_lock.current(tx, now)
    if lock is not None:
        response.lock.CopyFrom(lock)
    return response

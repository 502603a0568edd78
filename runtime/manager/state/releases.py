"""Release records (what `wrctl apply` last did per target) and the cluster-state read."""

from __future__ import annotations

from runtime.api import wruntime_pb2 as pb
from runtime.manager.errors import NotFound
from runtime.manager.state import apply_lock, counters, engines
from runtime.manager.state.timestamps import to_timestamp
from runtime.manager.store import Tx
from runtime.manager.validation import MANAGER_TARGET
from runtime.version import __version__


async def record(tx: Tx, release: pb.ReleaseRecord, lock_id: str, now: float) -> int:
    """Store the release of its target (the held lock is required); return the new serial."""
    await apply_lock.require(tx, lock_id, now)
    stored = pb.ReleaseRecord()
    stored.CopyFrom(release)
    stored.applied_at.CopyFrom(to_timestamp(now))
    stored.status = stored.status or "applied"
    await tx.execute(
        "INSERT INTO releases (target, record, applied_at) VALUES ($1, $2, $3) "
        "ON CONFLICT (target) DO UPDATE SET record = $2, applied_at = $3",
        stored.target,
        stored.SerializeToString(deterministic=True),
        now,
    )
    return await counters.bump(tx, counters.SERIAL)


async def delete(tx: Tx, target: str, lock_id: str, now: float) -> int:
    await apply_lock.require(tx, lock_id, now)
    if not await tx.execute("DELETE FROM releases WHERE target = $1", target):
        raise NotFound(f"target: no release recorded for {target!r}")
    return await counters.bump(tx, counters.SERIAL)


async def cluster_state(
    tx: Tx, now: float, timeouts: engines.Timeouts
) -> pb.GetClusterStateResponse:
    """Serial, releases, live engines per node and the lock, from one snapshot."""
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
    for status in await engines.list_status(tx, now, timeouts):
        node = status.registration.node
        if node:
            nodes.setdefault(node, pb.NodeState(name=node)).engines.append(status)
    response.nodes.extend(nodes[name] for name in sorted(nodes))
    lock = await apply_lock.current(tx, now)
    if lock is not None:
        response.lock.CopyFrom(lock)
    return response

"""Manager liveness rows: each running manager upserts its row every heartbeat; a row whose
heartbeat is older than the expiry is dead (and deleted by the next live manager's beat)."""

from __future__ import annotations

from runtime.api import wruntime_pb2 as pb
from runtime.manager.store import Tx


async def beat(
    tx: Tx, manager_id: str, grpc_address: str, now: float, expiry: float
) -> list[pb.ManagerInfo]:
    """Insert or refresh this manager's row, drop expired ones; return the live set."""
    await tx.execute(
        "INSERT INTO managers (manager_id, grpc_address, started_at, heartbeat_at) "
        "VALUES ($1, $2, $3, $3) ON CONFLICT (manager_id) "
        "DO UPDATE SET grpc_address = $2, heartbeat_at = $3",
        manager_id,
        grpc_address,
        now,
    )
    await tx.execute("DELETE FROM managers WHERE heartbeat_at <= $1", now - expiry)
    return await live(tx, now, expiry)


async def live(tx: Tx, now: float, expiry: float) -> list[pb.ManagerInfo]:
    """Managers whose heartbeat is within the expiry, oldest start first (ties by id)."""
    rows = await tx.fetch(
        "SELECT manager_id, grpc_address FROM managers WHERE heartbeat_at > $1 "
        "ORDER BY started_at, manager_id",
        now - expiry,
    )
    return [
        pb.ManagerInfo(manager_id=row["manager_id"], grpc_address=row["grpc_address"])
        for row in rows
    ]


async def leave(tx: Tx, manager_id: str) -> None:
    """A clean stop: the manager leaves the live set at once, not after the expiry."""
    await tx.execute("DELETE FROM managers WHERE manager_id = $1", manager_id)

"""Monotonic counters: the routing-table version and the cluster-state serial.

Bump counters last in a transaction: the UPDATE takes the counter's row lock (PostgreSQL) until
commit, so concurrent writers serialise on it without any other lock being held after it.
Order when both move: routing_version, then serial.
"""

from __future__ import annotations

from runtime.manager.store import Tx

ROUTING_VERSION = "routing_version"
SERIAL = "serial"


async def bump(tx: Tx, name: str) -> int:
    row = await tx.fetchrow(
        "UPDATE counters SET value = value + 1 WHERE name = $1 RETURNING value", name
    )
    assert row is not None, f"counter {name} missing: migrations not applied"
    return int(row["value"])


async def get(tx: Tx, name: str) -> int:
    row = await tx.fetchrow("SELECT value FROM counters WHERE name = $1", name)
    assert row is not None, f"counter {name} missing: migrations not applied"
    return int(row["value"])

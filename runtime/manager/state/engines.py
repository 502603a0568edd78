"""Engine registrations, heartbeats and the per-module readiness they report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import semver

from runtime.api import wruntime_pb2 as pb
from runtime.identity import Identity
from runtime.manager.errors import NotFound
from runtime.manager.state import authority, counters, routing
from runtime.manager.state.timestamps import to_timestamp
from runtime.manager.store import Row, Tx
from runtime.wire import module_host, module_key

# PostgreSQL advisory lock ("wrhlth") between health writers and health sweeps. Registrations,
# heartbeats and deregistrations take it shared (they run concurrently); a sweep over every
# engine (monitor tick, retention) takes it exclusively. Without it a sweep that read an
# engine's last heartbeat just before another manager's heartbeat committed would flip the
# engine's healthy rules to unhealthy after that heartbeat (a lost update: nothing touched the
# rule rows, so row locks cannot see the conflict). The lock is taken first in each
# transaction (before any row lock, so no deadlock), and a sweep's next statement then sees
# every heartbeat committed before it. SQLite has one writer at a time and needs none.
HEALTH_LOCK_KEY = 0x777268_6C7468


async def health_lock(tx: Tx, exclusive: bool) -> None:
    kind = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    await tx.execute(f"SELECT {kind}($1)", HEALTH_LOCK_KEY)


@dataclass(frozen=True)
class Timeouts:
    """How long an engine heartbeat and a module's healthy report stay valid, and how long a
    silent or deregistered engine is kept (unhealthy) before it is forgotten."""

    engine_secs: float
    module_secs: float
    retention_secs: float = 3600.0


def _in_lock_order(modules: Iterable[pb.ModuleDescriptor]) -> list[pb.ModuleDescriptor]:
    # One row order for every transaction, so concurrent writers cannot deadlock (PostgreSQL).
    return sorted(modules, key=lambda m: (m.namespace, m.name, m.version))


def _stripped(reg: pb.EngineRegistration) -> bytes:
    """The registration as stored: schemas live in their own table, once per module version."""
    copy = pb.EngineRegistration()
    copy.CopyFrom(reg)
    for module in copy.modules:
        module.proto_schema = b""
    return copy.SerializeToString(deterministic=True)


async def _forget(tx: Tx, engine_id: str) -> int:
    await tx.execute("DELETE FROM engine_modules WHERE engine_id = $1", engine_id)
    return await routing.delete_default_rules(tx, engine_id)


async def register(tx: Tx, reg: pb.EngineRegistration, registered_by: str, now: float) -> int:
    """Store (or replace) a registration with its modules, schemas and default rules, which
    start unhealthy until a heartbeat reports the module; return the new routing version.
    `registered_by` is the identity URI of the registering node: only it may heartbeat or
    deregister the engine afterwards (operators may deregister any)."""
    await _forget(tx, reg.engine_id)
    await tx.execute(
        "INSERT INTO engines (engine_id, node, registration, registered_at, last_heartbeat, "
        "registered_by) VALUES ($1, $2, $3, $4, $4, $5) ON CONFLICT (engine_id) DO UPDATE "
        "SET node = $2, registration = $3, registered_at = $4, last_heartbeat = $4, "
        "deregistered_at = NULL, registered_by = $5",
        reg.engine_id,
        reg.node,
        _stripped(reg),
        now,
        registered_by,
    )
    for module in _in_lock_order(reg.modules):
        await tx.execute(
            "INSERT INTO engine_modules (engine_id, namespace, name, version, digest, last_seen, "
            "worker_max_attempts) VALUES ($1, $2, $3, $4, $5, NULL, $6)",
            reg.engine_id,
            module.namespace,
            module.name,
            module.version,
            module.digest,
            module.worker_max_attempts,
        )
        if module.proto_schema:
            await tx.execute(
                "INSERT INTO schemas (namespace, name, version, proto_schema) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (namespace, name, version) "
                "DO UPDATE SET proto_schema = $4",
                module.namespace,
                module.name,
                module.version,
                module.proto_schema,
            )
    await routing.insert_default_rules(tx, reg)
    return await counters.bump(tx, counters.ROUTING_VERSION)


async def deregister(tx: Tx, engine_id: str, now: float, timeouts: Timeouts) -> None:
    """Take the engine out of routing now. Its rules stay, unhealthy, until the retention
    passes: callers get "no healthy instance" (503) rather than "unknown module" meanwhile."""
    if not await tx.execute(
        "UPDATE engines SET deregistered_at = $2 WHERE engine_id = $1 AND deregistered_at IS NULL",
        engine_id,
        now,
    ):
        raise NotFound(f"engine_id: no engine {engine_id!r} is registered")
    await refresh_health(tx, now, timeouts, engine_id)


async def heartbeat(
    tx: Tx,
    engine_id: str,
    healthy: list[pb.ModuleDescriptor],
    now: float,
    timeouts: Timeouts,
    node: Identity,
) -> list[tuple[str, bool]]:
    """Record liveness and module readiness of an engine `node` registered (rows from before
    identities: of the node they name); return the rules whose health flipped."""
    # Ownership is part of the UPDATE: the hot path costs no extra query.
    if not await tx.execute(
        "UPDATE engines SET last_heartbeat = $2 WHERE engine_id = $1 AND deregistered_at IS NULL "
        "AND (registered_by = $3 OR (registered_by = '' AND node = $4))",
        engine_id,
        now,
        node.uri,
        node.name,
    ):
        await authority.check_owner(tx, engine_id, node, "Heartbeat")
        raise NotFound(f"engine_id: no engine {engine_id!r} is registered (register again)")
    for module in _in_lock_order(healthy):
        await tx.execute(
            "UPDATE engine_modules SET last_seen = $5 "
            "WHERE engine_id = $1 AND namespace = $2 AND name = $3 AND version = $4",
            engine_id,
            module.namespace,
            module.name,
            module.version,
            now,
        )
    return await refresh_health(tx, now, timeouts, engine_id)


async def refresh_health(
    tx: Tx, now: float, timeouts: Timeouts, engine_id: str = ""
) -> list[tuple[str, bool]]:
    """Recompute default-rule health (one engine or all); bump the version when any flipped."""
    flips = await routing.recompute_health(
        tx, now - timeouts.engine_secs, now - timeouts.module_secs, engine_id
    )
    if flips:
        await counters.bump(tx, counters.ROUTING_VERSION)
    return flips


async def forget_departed(tx: Tx, now: float, timeouts: Timeouts) -> list[str]:
    """Delete engines silent or deregistered for longer than the retention (engine ids are
    new on every engine start, so they would pile up); return their ids."""
    rows = await tx.fetch(
        "SELECT engine_id FROM engines WHERE COALESCE(deregistered_at, last_heartbeat) < $1 "
        "ORDER BY engine_id",
        now - timeouts.retention_secs,
    )
    removed_rules = 0
    for row in rows:
        await tx.execute("DELETE FROM engines WHERE engine_id = $1", row["engine_id"])
        removed_rules += await _forget(tx, row["engine_id"])
    if removed_rules:
        await counters.bump(tx, counters.ROUTING_VERSION)
    return [row["engine_id"] for row in rows]


def _status(row: Row, modules: list[Row], now: float, timeouts: Timeouts) -> pb.EngineStatus:
    reg = pb.EngineRegistration.FromString(bytes(row["registration"]))
    by_key = {(m.namespace, m.name, m.version): m for m in reg.modules}
    status = pb.EngineStatus(
        registration=reg,
        healthy=row["last_heartbeat"] > now - timeouts.engine_secs,
        registered_at=to_timestamp(row["registered_at"]),
        last_heartbeat=to_timestamp(row["last_heartbeat"]),
    )
    for m in modules:
        seen = m["last_seen"]
        health = status.modules.add(healthy=seen is not None and seen > now - timeouts.module_secs)
        health.module.CopyFrom(by_key[(m["namespace"], m["name"], m["version"])])
        if seen is not None:
            health.last_seen.CopyFrom(to_timestamp(seen))
    return status


async def list_status(
    tx: Tx, now: float, timeouts: Timeouts, node: str | None = None
) -> list[pb.EngineStatus]:
    """Every registered engine (or those of one node) with its health right now; deregistered
    ones are left out."""
    rows = await tx.fetch(
        "SELECT engine_id, node, registration, registered_at, last_heartbeat FROM engines "
        "WHERE deregistered_at IS NULL ORDER BY engine_id"
    )
    module_rows = await tx.fetch(
        "SELECT engine_id, namespace, name, version, last_seen FROM engine_modules "
        "ORDER BY engine_id, namespace, name, version"
    )
    modules: dict[str, list[Row]] = {}
    for m in module_rows:
        modules.setdefault(m["engine_id"], []).append(m)
    return [
        _status(row, modules.get(row["engine_id"], []), now, timeouts)
        for row in rows
        if node is None or row["node"] == node
    ]


async def counts(tx: Tx, now: float, timeouts: Timeouts) -> tuple[int, int]:
    """(registered engines, engines with a heartbeat within the timeout)."""
    row = await tx.fetchrow(
        "SELECT COUNT(*) AS total, "
        "COALESCE(SUM(CASE WHEN last_heartbeat > $1 THEN 1 ELSE 0 END), 0) AS healthy "
        "FROM engines WHERE deregistered_at IS NULL",
        now - timeouts.engine_secs,
    )
    assert row is not None
    return int(row["total"]), int(row["healthy"])


async def schema(tx: Tx, namespace: str, name: str, version: str) -> bytes:
    """The FileDescriptorSet of a module version ('' version = the highest registered)."""
    rows = await tx.fetch(
        "SELECT version, proto_schema FROM schemas WHERE namespace = $1 AND name = $2",
        namespace,
        name,
    )
    if version:
        rows = [r for r in rows if r["version"] == version]
    if not rows:
        what = module_key(namespace, name, version) if version else module_host(namespace, name)
        raise NotFound(f"no schema registered for module {what}")
    best = max(rows, key=lambda r: semver.Version.parse(r["version"]))
    return bytes(best["proto_schema"])

"""The routing table: default rules derived from registrations, explicit rules from admins,
their health, and the version that moves on every change."""

from __future__ import annotations

from runtime.api import wruntime_pb2 as pb
from runtime.manager.errors import NotFound
from runtime.manager.state import counters
from runtime.manager.store import Row, Tx
from runtime.wire import module_key

_COLUMNS = (
    "rule_id, engine_id, engine_address, peer_address, source_namespace, source_module, "
    "destination_namespace, destination_module, destination_version, healthy"
)

# A default rule is healthy when its engine is registered and heartbeated within the engine
# timeout ($1 = cutoff) and its module was reported healthy within the module timeout
# ($2 = cutoff). $3 limits the recomputation to one engine ('' = all). Only rows whose health
# flips are written.
_RECOMPUTE = """
UPDATE routing_rules AS r SET healthy = NOT healthy
WHERE r.kind = 'default' AND ($3 = '' OR r.engine_id = $3) AND r.healthy <> (
    EXISTS (
        SELECT 1 FROM engines e
        WHERE e.engine_id = r.engine_id AND e.deregistered_at IS NULL AND e.last_heartbeat > $1)
    AND EXISTS (
        SELECT 1 FROM engine_modules m
        WHERE m.engine_id = r.engine_id AND m.namespace = r.destination_namespace
          AND m.name = r.destination_module AND m.version = r.destination_version
          AND m.last_seen IS NOT NULL AND m.last_seen > $2))
RETURNING rule_id, healthy
"""


def default_rule_id(engine_id: str, module: pb.ModuleDescriptor) -> str:
    """Stable id of an engine's rule for one module: "engine_id/ns.name@version"."""
    return f"{engine_id}/{module_key(module.namespace, module.name, module.version)}"


def _rule(row: Row) -> pb.RoutingRule:
    return pb.RoutingRule(
        rule_id=row["rule_id"],
        engine_id=row["engine_id"],
        engine_address=row["engine_address"],
        peer_address=row["peer_address"],
        source_namespace=row["source_namespace"],
        source_module=row["source_module"],
        destination_namespace=row["destination_namespace"],
        destination_module=row["destination_module"],
        destination_version=row["destination_version"],
        healthy=bool(row["healthy"]),
    )


async def insert_default_rules(tx: Tx, reg: pb.EngineRegistration) -> None:
    """One unhealthy rule per module; an explicit rule with the same id is left alone."""
    for module in sorted(reg.modules, key=lambda m: (m.namespace, m.name, m.version)):
        await tx.execute(
            f"INSERT INTO routing_rules (kind, {_COLUMNS}) "
            "VALUES ('default', $1, $2, $3, $4, '', '', $5, $6, $7, $8) "
            "ON CONFLICT (rule_id) DO NOTHING",
            default_rule_id(reg.engine_id, module),
            reg.engine_id,
            reg.address,
            reg.peer_address,
            module.namespace,
            module.name,
            module.version,
            False,
        )


async def delete_default_rules(tx: Tx, engine_id: str) -> int:
    return await tx.execute(
        "DELETE FROM routing_rules WHERE kind = 'default' AND engine_id = $1", engine_id
    )


async def recompute_health(
    tx: Tx, engine_cutoff: float, module_cutoff: float, engine_id: str = ""
) -> list[tuple[str, bool]]:
    """Flip the default rules whose health changed; return (rule_id, healthy) of each flip."""
    rows = await tx.fetch(_RECOMPUTE, engine_cutoff, module_cutoff, engine_id)
    return sorted((row["rule_id"], bool(row["healthy"])) for row in rows)


async def current_version(tx: Tx) -> int:
    return await counters.get(tx, counters.ROUTING_VERSION)


async def table(tx: Tx) -> pb.RoutingTable:
    version = await counters.get(tx, counters.ROUTING_VERSION)
    rows = await tx.fetch(f"SELECT {_COLUMNS} FROM routing_rules ORDER BY rule_id")
    return pb.RoutingTable(version=version, rules=[_rule(row) for row in rows])


async def explicit_rules(tx: Tx) -> list[pb.RoutingRule]:
    """Rules written by UpsertRoutingRule; wrctl apply writes none, so each one is drift."""
    rows = await tx.fetch(
        f"SELECT {_COLUMNS} FROM routing_rules WHERE kind = 'explicit' ORDER BY rule_id"
    )
    return [_rule(row) for row in rows]


async def upsert(tx: Tx, rule: pb.RoutingRule) -> int:
    """Insert or replace an explicit rule (always healthy); return the new table version."""
    await tx.execute(
        f"INSERT INTO routing_rules (kind, {_COLUMNS}) "
        "VALUES ('explicit', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10) "
        "ON CONFLICT (rule_id) DO UPDATE SET kind = 'explicit', engine_id = $2, "
        "engine_address = $3, peer_address = $4, source_namespace = $5, source_module = $6, "
        "destination_namespace = $7, destination_module = $8, destination_version = $9, "
        "healthy = $10",
        rule.rule_id,
        rule.engine_id,
        rule.engine_address,
        rule.peer_address,
        rule.source_namespace,
        rule.source_module,
        rule.destination_namespace,
        rule.destination_module,
        rule.destination_version,
        True,
    )
    version = await counters.bump(tx, counters.ROUTING_VERSION)
    await counters.bump(tx, counters.SERIAL)
    return version


async def delete(tx: Tx, rule_id: str) -> int:
    """Delete any rule by id; return the new table version."""
    if not await tx.execute("DELETE FROM routing_rules WHERE rule_id = $1", rule_id):
        raise NotFound(f"rule_id: no routing rule {rule_id!r}")
    version = await counters.bump(tx, counters.ROUTING_VERSION)
    await counters.bump(tx, counters.SERIAL)
    return version

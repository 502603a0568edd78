"""Secrets at rest: encrypted values, listed by key only, resolved for registering engines."""

from __future__ import annotations

from collections.abc import Iterable

from runtime.api import wruntime_pb2 as pb
from runtime.manager.errors import FailedPrecondition, NotFound
from runtime.manager.secretbox import SecretBox
from runtime.manager.state import counters
from runtime.manager.state.timestamps import to_timestamp
from runtime.manager.store import Tx


async def put(tx: Tx, box: SecretBox, namespace: str, key: str, value: str, now: float) -> int:
    """Create (version 1) or replace (version + 1) a secret; return the new serial."""
    nonce, ciphertext = box.encrypt(namespace, key, value)
    await tx.execute(
        "INSERT INTO secrets (namespace, key, nonce, ciphertext, updated_at, version) "
        "VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT (namespace, key) DO UPDATE "
        "SET nonce = $3, ciphertext = $4, updated_at = $5, version = secrets.version + 1",
        namespace,
        key,
        nonce,
        ciphertext,
        now,
    )
    return await counters.bump(tx, counters.SERIAL)


async def delete(tx: Tx, namespace: str, key: str) -> int:
    if not await tx.execute(
        "DELETE FROM secrets WHERE namespace = $1 AND key = $2", namespace, key
    ):
        raise NotFound(f"no secret {namespace}/{key}")
    return await counters.bump(tx, counters.SERIAL)


async def list_keys(tx: Tx, namespace: str) -> list[pb.SecretEntry]:
    rows = await tx.fetch(
        "SELECT namespace, key, version, updated_at FROM secrets WHERE $1 = '' OR namespace = $1 "
        "ORDER BY namespace, key",
        namespace,
    )
    return [
        pb.SecretEntry(
            namespace=row["namespace"],
            key=row["key"],
            version=int(row["version"]),
            updated_at=to_timestamp(row["updated_at"]),
        )
        for row in rows
    ]


async def resolve(
    tx: Tx, box: SecretBox, requests: Iterable[pb.SecretRequest]
) -> list[pb.NamespaceSecrets]:
    """Decrypt exactly the requested secrets; any missing one fails the whole request."""
    wanted = sorted({(r.namespace, r.key) for r in requests})
    found: dict[str, dict[str, str]] = {}
    missing: list[str] = []
    for namespace, key in wanted:
        row = await tx.fetchrow(
            "SELECT nonce, ciphertext FROM secrets WHERE namespace = $1 AND key = $2",
            namespace,
            key,
        )
        if row is None:
            missing.append(f"{namespace}/{key}")
            continue
        value = box.decrypt(namespace, key, row["nonce"], row["ciphertext"])
        found.setdefault(namespace, {})[key] = value
    if missing:
        raise FailedPrecondition(
            f"registration.secrets: requested secret(s) not set: {', '.join(missing)}"
            " (set them with SetSecret first)"
        )
    return [pb.NamespaceSecrets(namespace=ns, secrets=values) for ns, values in found.items()]


async def verify_all(tx: Tx, box: SecretBox) -> int:
    """Decrypt every stored secret (raises SecretDecryptError on the first that fails)."""
    rows = await tx.fetch("SELECT namespace, key, nonce, ciphertext FROM secrets")
    for row in rows:
        box.decrypt(row["namespace"], row["key"], row["nonce"], row["ciphertext"])
    return len(rows)

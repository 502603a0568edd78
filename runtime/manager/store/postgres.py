"""PostgreSQL state store (asyncpg pool): for several managers sharing one database. Migrations
run under an advisory lock; transient conflicts (deadlock, serialization) retry the transaction."""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from runtime.manager.store.backend import Row, StoreUnavailable, Tx
from runtime.manager.store.migrations import TABLE_DDL, load_migrations
from runtime.manager.store.open import redact_url

T = TypeVar("T")
log = logging.getLogger(__name__)

# pg_advisory_lock key serialising migrations of every manager on the database ("wrmgr").
MIGRATION_LOCK_KEY = 0x77726D6772
RETRIES = 5
_TRANSIENT = (asyncpg.exceptions.SerializationError, asyncpg.exceptions.DeadlockDetectedError)
# Errors that mean the database is out of reach rather than the request being wrong.
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
)


def _mode(write: bool) -> dict[str, Any]:
    # Reads that span several statements (cluster state) see one snapshot.
    return {} if write else {"isolation": "repeatable_read", "readonly": True}


class _PostgresTx:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        status: str = await self._conn.execute(sql, *args)
        # "UPDATE 3", "INSERT 0 1", "DELETE 0", "SELECT 1"
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        rows: list[Row] = await self._conn.fetch(sql, *args)
        return rows

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        row: Row | None = await self._conn.fetchrow(sql, *args)
        return row

    async def fetchrow_many(self, sql: str, each: Sequence[Sequence[Any]]) -> list[Row | None]:
        # asyncpg keeps the statement prepared, so each run is one round trip.
        return [await self._conn.fetchrow(sql, *args) for args in each]


class PostgresBackend:
    """The store for HA: any number of managers on one database."""

    kind = "postgres"

    def __init__(self, url: str, pool: asyncpg.Pool) -> None:
        self._url = url
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, max_connections: int = 10) -> PostgresBackend:
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=max_connections, command_timeout=30
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreUnavailable(
                f"state: cannot connect to PostgreSQL {redact_url(url)}: {exc}"
            ) from None
        backend = cls(url, pool)
        try:
            await backend._migrate()
        except asyncpg.PostgresError as exc:
            await pool.close()
            raise StoreUnavailable(
                f"state: cannot migrate PostgreSQL {redact_url(url)}: {exc}"
            ) from None
        return backend

    async def _migrate(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
            try:
                await conn.execute(TABLE_DDL)
                rows = await conn.fetch("SELECT version FROM schema_migrations")
                done = {row["version"] for row in rows}
                for migration in load_migrations("postgres"):
                    if migration.version in done:
                        continue
                    async with conn.transaction():
                        await conn.execute(migration.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations VALUES ($1, $2, $3)",
                            migration.version,
                            migration.name,
                            datetime.datetime.now(datetime.UTC).isoformat(),
                        )
                    log.info("applied migration", extra={"migration": migration.version})
            finally:
                await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)

    @contextlib.asynccontextmanager
    async def _connection(
        self, wait_secs: float | None = None
    ) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection; failing to get one at all means the store is unavailable."""
        try:
            conn = await self._pool.acquire(timeout=wait_secs)
        except (*_UNREACHABLE, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(f"state: PostgreSQL {redact_url(self._url)}: {exc}") from exc
        try:
            yield conn
        finally:
            await self._pool.release(conn)

    async def run(
        self, fn: Callable[[Tx], Awaitable[T]], *, write: bool = True, durable: bool = True
    ) -> T:
        for attempt in range(1, RETRIES + 1):
            try:
                async with self._connection() as conn, conn.transaction(**_mode(write)):
                    if not durable:
                        # The commit answers before its WAL is flushed (the WAL writer does
                        # it within wal_writer_delay); visible to others at once, as usual.
                        await conn.execute("SET LOCAL synchronous_commit = off")
                    return await fn(_PostgresTx(conn))
            except _TRANSIENT:
                if attempt == RETRIES:
                    raise
                log.info("retrying transaction after a conflict", extra={"attempt": attempt})
            except _UNREACHABLE as exc:
                raise StoreUnavailable(
                    f"state: PostgreSQL {redact_url(self._url)} unreachable: {exc}"
                ) from exc
        raise AssertionError("unreachable")

    async def ping(self) -> None:
        try:
            async with self._connection(wait_secs=5) as conn:
                await conn.fetchval("SELECT 1")
        except (*_UNREACHABLE, asyncpg.PostgresError) as exc:
            raise StoreUnavailable(f"state: PostgreSQL {redact_url(self._url)}: {exc}") from None

    async def close(self) -> None:
        await self._pool.close()

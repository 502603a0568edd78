"""SQLite state store: one file in WAL mode, one connection driven by one thread, one writer at a
time (an asyncio lock spans each transaction)."""

from __future__ import annotations

import asyncio
import datetime
import re
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from runtime.manager.store.backend import Row, StoreUnavailable, Tx
from runtime.manager.store.migrations import TABLE_DDL, load_migrations

T = TypeVar("T")
_PLACEHOLDER = re.compile(r"\$(\d+)")


@lru_cache(maxsize=256)
def _to_sqlite(sql: str) -> str:
    # "$1" -> "?1": SQLite's numbered parameters keep the same numbering and reuse.
    return _PLACEHOLDER.sub(r"?\1", sql)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed RPC survives power loss, not only a crash of the process.
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    return conn


class _SqliteTx:
    def __init__(self, backend: SqliteBackend) -> None:
        self._backend = backend

    async def execute(self, sql: str, *args: Any) -> int:
        cursor = await self._backend.call(self._backend.conn.execute, _to_sqlite(sql), args)
        return cursor.rowcount

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]:
        def work() -> list[sqlite3.Row]:
            return self._backend.conn.execute(_to_sqlite(sql), args).fetchall()

        return await self._backend.call(work)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        def work() -> sqlite3.Row | None:
            row: sqlite3.Row | None = self._backend.conn.execute(_to_sqlite(sql), args).fetchone()
            return row

        return await self._backend.call(work)

    async def fetchrow_many(self, sql: str, each: Sequence[Sequence[Any]]) -> list[Row | None]:
        statement = _to_sqlite(sql)

        def work() -> list[Row | None]:
            conn = self._backend.conn
            return [conn.execute(statement, args).fetchone() for args in each]

        return await self._backend.call(work)


class SqliteBackend:
    """The embedded default store."""

    kind = "sqlite"

    def __init__(self, path: str, conn: sqlite3.Connection, executor: ThreadPoolExecutor) -> None:
        self.path = path
        self.conn = conn
        self._executor = executor
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SqliteBackend:
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        loop = asyncio.get_running_loop()
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = await loop.run_in_executor(executor, _connect, path)
        except (OSError, sqlite3.Error) as exc:
            executor.shutdown(wait=False)
            raise StoreUnavailable(f"state: cannot open SQLite database {path}: {exc}") from None
        backend = cls(path, conn, executor)
        try:
            await backend.call(backend._migrate)
        except sqlite3.Error as exc:
            await backend.close()
            raise StoreUnavailable(f"state: cannot migrate SQLite database {path}: {exc}") from None
        return backend

    def _migrate(self) -> None:
        self.conn.execute(TABLE_DDL)
        done = {row[0] for row in self.conn.execute("SELECT version FROM schema_migrations")}
        for migration in load_migrations("sqlite"):
            if migration.version in done:
                continue
            now = datetime.datetime.now(datetime.UTC).isoformat()
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _statements(migration.sql):
                    self.conn.execute(statement)
                self.conn.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                    (migration.version, migration.name, now),
                )
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(*args) on the store's thread (the only thread that touches the connection)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run(
        self, fn: Callable[[Tx], Awaitable[T]], *, write: bool = True, durable: bool = True
    ) -> T:
        async with self._lock:
            try:
                await self.call(self._begin, "BEGIN IMMEDIATE" if write else "BEGIN", durable)
            except sqlite3.OperationalError as exc:  # locked by another process, disk gone
                raise StoreUnavailable(f"state: SQLite database {self.path}: {exc}") from exc
            try:
                result = await fn(_SqliteTx(self))
            except BaseException:
                await asyncio.shield(self.call(self._end, "ROLLBACK", durable))
                raise
            await asyncio.shield(self.call(self._end, "COMMIT", durable))
            return result

    def _begin(self, statement: str, durable: bool) -> None:
        # synchronous=NORMAL in WAL mode: the commit appends to the WAL without an fsync; the
        # next FULL commit's fsync covers it. It is read at commit time, set outside the
        # transaction (one store thread, so no other transaction sees it).
        if not durable:
            self.conn.execute("PRAGMA synchronous=NORMAL")
        try:
            self.conn.execute(statement)
        except BaseException:
            if not durable:
                self.conn.execute("PRAGMA synchronous=FULL")
            raise

    def _end(self, statement: str, durable: bool) -> None:
        try:
            self.conn.execute(statement)
        finally:
            if not durable:
                self.conn.execute("PRAGMA synchronous=FULL")

    async def ping(self) -> None:
        try:
            async with self._lock:
                await self.call(self.conn.execute, "SELECT 1")
        except (sqlite3.Error, RuntimeError) as exc:  # RuntimeError: the store was closed
            raise StoreUnavailable(f"state: SQLite database {self.path}: {exc}") from None

    async def close(self) -> None:
        async with self._lock:
            await self.call(self.conn.close)
        self._executor.shutdown(wait=True)


def _statements(script: str) -> list[str]:
    """Split a migration into statements (our migrations hold no ';' inside literals)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]

"""The interface both state stores implement: run one function as one transaction.

SQL is written once, in PostgreSQL's `$1` placeholder style and a portable subset
(INSERT ... ON CONFLICT, UPDATE ... RETURNING); the SQLite backend rewrites placeholders.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class StoreUnavailable(Exception):
    """The state store cannot be opened or reached."""


class Row(Protocol):
    """A result row, addressable by column name (sqlite3.Row and asyncpg.Record both are)."""

    def __getitem__(self, key: str) -> Any: ...


class Tx(Protocol):
    """One open transaction."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; return the number of rows it changed."""
        ...

    async def fetch(self, sql: str, *args: Any) -> Sequence[Row]: ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None: ...

    async def fetchrow_many(self, sql: str, each: Sequence[Sequence[Any]]) -> list[Row | None]:
        """Run one statement once per argument tuple, in order; each run's first row (or
        None). One hop to the store for a whole batch (a round's finalizes, a group of
        submits) instead of one per row."""
        ...


class Backend(Protocol):
    """A SQL database holding the manager's tables."""

    kind: str  # "sqlite" | "postgres"

    async def run(
        self, fn: Callable[[Tx], Awaitable[T]], *, write: bool = True, durable: bool = True
    ) -> T:
        """Run fn inside one transaction: committed when it returns, rolled back when it
        raises. Backends may retry fn on transient conflicts, so fn must only touch the db.
        `durable=False`: the commit returns before it is on disk (no fsync of its own; the next
        durable commit flushes it too), so a power loss or OS crash (SQLite) or a crash of the
        database server (PostgreSQL) may undo it, whole, never in part; a crash of the manager
        process cannot. Only for work whose loss means it is done again (claims, finalizes)."""
        ...

    async def ping(self) -> None:
        """Raise StoreUnavailable when the database does not answer."""
        ...

    async def close(self) -> None: ...

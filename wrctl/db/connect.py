"""wrctl's admin connection to [database] url: as the URL's user, with the password from
WR_DB_PASSWORD, else what asyncpg finds itself (PGPASSWORD, ~/.pgpass). cluster.toml never
holds it, and no message here carries it."""

from __future__ import annotations

import os
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from wrctl.errors import WrctlError

PASSWORD_ENV = "WR_DB_PASSWORD"
CONNECT_TIMEOUT_S = 10.0


class DatabaseError(WrctlError):
    """The [database] refused or failed a step of wrctl's (not a migration's own SQL)."""


class DatabaseUnreachable(DatabaseError):
    """The [database] could not be reached or refused the admin user."""


# what asyncpg raises on a refused statement or a lost connection
FAILURES = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def failure_text(exc: BaseException) -> str:
    sqlstate = getattr(exc, "sqlstate", None)
    text = str(exc) or type(exc).__name__
    return f"{sqlstate} {text}" if sqlstate else text


async def connect_admin(url: str, why: str) -> Any:
    """An asyncpg connection to url (a URL without a password); `why` says what for."""
    try:
        return await asyncpg.connect(
            url, password=os.environ.get(PASSWORD_ENV) or None, timeout=CONNECT_TIMEOUT_S
        )
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = str(exc) or type(exc).__name__
        raise DatabaseUnreachable(
            f"cannot connect to the database {url} ([database] url) to {why}: {reason} "
            f"(the password of its user comes from {PASSWORD_ENV}, PGPASSWORD or ~/.pgpass)"
        ) from None

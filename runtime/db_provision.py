"""A namespace's place in PostgreSQL for the `db` capability: its own login role and schema.

`wr_ns_<namespace>` (see capability_config.db_role) is both the role and the schema the role
owns; the role's search_path is that schema, and nothing is granted to it elsewhere, so a
module of namespace A cannot reach B's tables, not with a schema-qualified name and not with
`SET search_path`. `wrctl apply` runs this as the admin user of [database] url (it needs
CREATEROLE); engines then log in as the namespace role.

The password never travels in a statement: the role gets a SCRAM-SHA-256 verifier computed
here, so a server that logs statements logs no password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from runtime.capability_config import db_role

SCRAM_ITERATIONS = 4096


def new_password() -> str:
    return secrets.token_urlsafe(32)


def scram_verifier(password: str, salt: bytes | None = None) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password (what `\\password` sends)."""
    salt = salt or secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


async def role_exists(conn: Any, namespace: str) -> bool:
    """Whether the namespace's role is there (conn: an asyncpg connection)."""
    found = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", db_role(namespace))
    return bool(found)


async def ensure_namespace(conn: Any, namespace: str, password: str | None) -> None:
    """Make (or repair) the namespace's role and schema; set the role's password when one is
    given (None keeps the present one). Idempotent; runs in one transaction."""
    role = quote_ident(db_role(namespace))
    database = quote_ident(await conn.fetchval("SELECT current_database()"))
    async with conn.transaction():
        if not await role_exists(conn, namespace):
            await conn.execute(
                f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT "
                "NOREPLICATION NOBYPASSRLS"
            )
        if password is not None:
            await conn.execute(
                f"ALTER ROLE {role} PASSWORD {quote_literal(scram_verifier(password))}"
            )
        # the admin must be a member to create the schema owned by the role (PG16+ rules)
        await conn.execute(f"GRANT {role} TO CURRENT_USER")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {role} AUTHORIZATION {role}")
        await conn.execute(f"REVOKE ALL ON SCHEMA {role} FROM PUBLIC")
        await conn.execute(f"ALTER ROLE {role} SET search_path = {role}")
        await conn.execute(f"GRANT CONNECT ON DATABASE {database} TO {role}")
        # PostgreSQL 15+ already keeps PUBLIC from creating in `public`; older ones did not,
        # and a table there would be shared by every namespace
        await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")

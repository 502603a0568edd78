"""The config sections of the host capabilities: [database], [blobstore] and [llm].

The same sections, with the same keys and defaults, appear in cluster.toml (wrctl's model
subclasses these and refuses plain-text secrets) and in the engine.toml apply renders from it.
A secret value is `{ secret = "key" }`: a namespace secret, resolved in the namespace of each
module that uses the capability (an engine receives it at registration, and only its bindings
see it, never a guest). engine.toml also takes plain strings, for an engine run by hand.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from runtime.names import check_name

MIB = 1024 * 1024


class SecretRef(BaseModel):
    """`{ secret = "key" }`: the namespace secret `key`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    secret: str

    @field_validator("secret")
    @classmethod
    def _key(cls, v: str) -> str:
        return check_name(v, "secret")


Secret = str | SecretRef


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(v: str) -> str:
    if not v.startswith(("http://", "https://")) or not urlsplit(v).hostname:
        raise ValueError(f"expected an http(s)://host[:port] URL, got {v!r}")
    return v


class DatabaseSettings(_Section):
    """[database]: the PostgreSQL of the `db` capability. Engines connect to this host and
    database as their module's namespace role (`wr_ns_<namespace>`, password: the namespace
    secret `wr-db-password`); `wrctl apply` connects as the URL's user to make the roles and
    schemas and to run migrations."""

    url: str
    max_connections: Annotated[int, Field(ge=1, le=100)] = 4  # per worker and namespace
    statement_timeout_ms: Annotated[int, Field(ge=10, le=3_600_000)] = 5000
    max_transactions: Annotated[int, Field(ge=1, le=1024)] = 64  # open at once, per request
    max_cursors: Annotated[int, Field(ge=1, le=4096)] = 256  # open at once, per request

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("postgres://", "postgresql://")):
            raise ValueError(f"expected a postgres://user@host:port/database URL, got {v!r}")
        try:
            parts = urlsplit(v)
            _ = parts.port
        except ValueError as exc:
            raise ValueError(f"{v!r} is not a URL ({exc})") from None
        if not parts.hostname or not parts.path.strip("/"):
            raise ValueError(f"expected a postgres://user@host:port/database URL, got {v!r}")
        return v


class BlobstoreSettings(_Section):
    """[blobstore]: the S3-compatible store of the `blobstore` capability. Which buckets a
    module may use is its own `allowed_buckets`."""

    endpoint: str
    region: str = "us-east-1"
    access_key_id: Secret
    secret_access_key: Secret
    max_object_size: Annotated[int, Field(ge=1, le=5 * 1024 * MIB)] = 16 * MIB
    max_list_objects: Annotated[int, Field(ge=1, le=100_000)] = 1000

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        return _http_url(v)


class LlmSettings(_Section):
    """[llm]: the Anthropic Messages API of the `llm` capability."""

    api_key: Secret
    base_url: str = "https://api.anthropic.com"
    max_tokens_limit: Annotated[int, Field(ge=1, le=1_000_000)] = 8192
    max_streams: Annotated[int, Field(ge=1, le=1024)] = 32  # live streams, per request
    tokens_per_minute: Annotated[int, Field(ge=1)] = 100_000  # per module, input + output
    timeout_secs: Annotated[int, Field(ge=1, le=3600)] = 60

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        return _http_url(v)


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
BUCKET_RULE = "3-63 characters of a-z, 0-9, '.' and '-', starting and ending with a letter or digit"


def bucket_problem(name: str) -> str | None:
    """Why `name` is not an S3 bucket name (None: it is)."""
    if not _BUCKET.fullmatch(name):
        return f"{name!r} is not a bucket name ({BUCKET_RULE})"
    return None


def db_role(namespace: str) -> str:
    """The PostgreSQL role and schema of a namespace (names allow '-', SQL identifiers not)."""
    return "wr_ns_" + namespace.replace("-", "_")

"""Open the backend a state URL names."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from runtime.manager.store.backend import Backend


async def open_backend(url: str, *, max_connections: int = 10) -> Backend:
    """ "sqlite:///abs/path.db" or "postgresql://..." -> a migrated, ready backend."""
    scheme = url.split(":", 1)[0]
    if scheme == "sqlite":
        from runtime.manager.store.sqlite import SqliteBackend

        return await SqliteBackend.open(urlsplit(url).path)
    if scheme in {"postgres", "postgresql"}:
        from runtime.manager.store.postgres import PostgresBackend

        return await PostgresBackend.open(url, max_connections=max_connections)
    raise ValueError(f"state: unsupported store URL scheme {scheme!r}")


def redact_url(url: str) -> str:
    """The URL without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))

"""The manager's persistent state: one SQL backend interface, SQLite and PostgreSQL behind it."""

from __future__ import annotations

from runtime.manager.store.backend import Backend, Row, StoreUnavailable, Tx
from runtime.manager.store.open import open_backend, redact_url

__all__ = ["Backend", "Row", "StoreUnavailable", "Tx", "open_backend", "redact_url"]

"""W3C traceparent: continue the incoming trace on every outbound call."""

from __future__ import annotations

import re
import secrets

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def parse(value: str | None) -> tuple[str, str] | None:
    """(trace id, flags) of a valid traceparent, else None."""
    match = _TRACEPARENT.match(value or "")
    if match is None or match[1] == "0" * 32:
        return None
    return match[1], match[3]


def child_of(incoming: str | None) -> str:
    """A traceparent for a new span in the incoming trace (or in a new sampled trace)."""
    parsed = parse(incoming)
    trace_id, flags = parsed if parsed else (secrets.token_hex(16), "01")
    return f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"

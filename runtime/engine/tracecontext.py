"""W3C traceparent for the guest's outbound calls: continue the request's trace."""

from __future__ import annotations

import re
import secrets

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")


def is_valid(value: str | None) -> bool:
    match = _TRACEPARENT.fullmatch(value or "")
    return match is not None and match[1] != "0" * 32 and match[2] != "0" * 16


def outbound(request_traceparent: str | None) -> str:
    """The traceparent of an outbound call made while serving a request.

    The front hands the worker its own span's context when tracing is on (so calls nest under
    the engine's span), else the caller's; the engine adds no span of its own per call, so it
    forwards that context unchanged. A request without a valid one starts a new sampled trace.
    """
    if is_valid(request_traceparent):
        return str(request_traceparent)
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"

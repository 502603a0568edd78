"""What clients of several managers (the proxy's link, wrctl) agree on: when a manager counts
as not answering, and when a failed call may be sent again to the next manager."""

from __future__ import annotations

import grpc

# The codes that mean "this manager is not answering", not "the manager said no".
AWAY = frozenset((grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED))
# Calls that may be sent again to the next manager whatever happened to the first attempt:
# reads, and writes whose repetition changes nothing (a registration replaces itself, a
# heartbeat or a lease renewal refreshes).
RETRY_SAFE = frozenset(
    (
        "GetRoutingTable",
        "GetSchema",
        "GetJobStatus",
        "ListManagers",
        "GetClusterState",
        "ListEngines",
        "ListReleases",
        "ListSecrets",
        "ListJobs",
        "ListSchedules",
        "RegisterEngine",
        "Heartbeat",
        "RenewApplyLock",
    )
)
# grpc's words when no connection could be made: the request never left this process.
_NOT_CONNECTED = ("failed to connect to all addresses", "connection refused")


def never_sent(exc: grpc.RpcError) -> bool:
    """True when the call failed before reaching any manager (so any call may be re-sent)."""
    if not isinstance(exc, grpc.Call) or exc.code() != grpc.StatusCode.UNAVAILABLE:
        return False
    details = (exc.details() or "").lower()
    return any(words in details for words in _NOT_CONNECTED)


def may_resend(method: str, exc: grpc.RpcError) -> bool:
    """Whether `method`, failed with `exc` on one manager, may be sent to the next one."""
    return method in RETRY_SAFE or never_sent(exc)

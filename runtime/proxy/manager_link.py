"""The proxy's gRPC link to the managers: mutual TLS with the node certificate, verifying each
manager as MANAGER_TLS_NAME; one channel per manager address, calls go to the current one and
move to the next when it stops answering; channels are replaced when the certificate rotates.

Why a channel per address with our own failover rather than grpc's round_robin over
`ipv4:a,b`: addresses may be host names (a static `ipv4:` list cannot hold them), a hung
manager (process alive, not answering) is only noticed by a call's deadline, which a balancer
does not act on, and only idempotent calls may be sent again to the next manager."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import grpc

from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import MANAGER_TLS_NAME, channel_options
from runtime.manager_failover import AWAY, may_resend

log = logging.getLogger("wr-proxy.manager")

# Short reconnect backoff: a manager that comes back is noticed within seconds, not after
# grpc's default of up to two minutes.
_RECONNECT: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
# Calls already on the old channels get this long to finish after a rotation.
DRAIN_SECS = 10.0


class ManagerLink:
    """Holds a channel per manager address; callers use `stub.<Rpc>(request, timeout=...)`."""

    def __init__(
        self,
        addresses: str | Sequence[str],
        credentials: Callable[[], grpc.ChannelCredentials],
        start: int = 0,
    ) -> None:
        self.addresses = [addresses] if isinstance(addresses, str) else list(addresses)
        if not self.addresses:
            raise ValueError("manager addresses: expected at least one host:port")
        self._credentials = credentials
        self._channels = [self._open(a) for a in self.addresses]
        self._stubs = [pb_grpc.ManagerServiceStub(c) for c in self._channels]
        # Which manager calls go to first; `start` spreads proxies over the managers.
        self.current = start % len(self.addresses)
        self.failovers = 0
        self.stub = _FailoverStub(self)
        self._draining: dict[asyncio.Task[None], list[grpc.aio.Channel]] = {}

    @property
    def address(self) -> str:
        return self.addresses[self.current]

    def _open(self, address: str) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(
            address, self._credentials(), [*channel_options(MANAGER_TLS_NAME), *_RECONNECT]
        )

    async def call(self, method: str, request: Any, **kwargs: Any) -> Any:
        """Call `method` on the current manager; when it is away, move on to the next one
        (and send the call again there when that is safe: manager_failover.may_resend)."""
        count = len(self.addresses)
        first = self.current
        for attempt in range(count):
            index = (first + attempt) % count
            rpc: Callable[..., Awaitable[Any]] = getattr(self._stubs[index], method)
            try:
                return await rpc(request, **kwargs)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in AWAY or count == 1:
                    raise
                self._move_past(index, exc)
                if not may_resend(method, exc) or attempt == count - 1:
                    raise
        raise AssertionError("unreachable")

    def _move_past(self, index: int, exc: grpc.aio.AioRpcError) -> None:
        # Concurrent calls may all fail on the same manager: move on once, not once each.
        if self.current != index:
            return
        self.current = (index + 1) % len(self.addresses)
        self.failovers += 1
        log.warning(
            "manager not answering; using the next one",
            extra={
                "failed": self.addresses[index],
                "next": self.addresses[self.current],
                "error": f"{exc.code().name}: {exc.details()}",
            },
        )

    def renew(self) -> None:
        """New calls go over new channels (new credentials); the old ones close after their
        calls in flight finish (at most DRAIN_SECS)."""
        old, self._channels = self._channels, [self._open(a) for a in self.addresses]
        self._stubs = [pb_grpc.ManagerServiceStub(c) for c in self._channels]
        task = asyncio.get_running_loop().create_task(_close_all(old, DRAIN_SECS))
        self._draining[task] = old
        task.add_done_callback(self._drained)
        log.info("manager channels renewed with the reloaded node certificate")

    def _drained(self, task: asyncio.Task[None]) -> None:
        self._draining.pop(task, None)

    async def close(self) -> None:
        for task, old in list(self._draining.items()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await _close_all(old, None)
        await _close_all(self._channels, None)


async def _close_all(channels: list[grpc.aio.Channel], grace: float | None) -> None:
    await asyncio.gather(*(c.close(grace) for c in channels))


class _FailoverStub:
    """`link.stub.Heartbeat(request, timeout=3)`: the generated stub's call shape, with
    ManagerLink.call behind it (so callers did not change)."""

    def __init__(self, link: ManagerLink) -> None:
        self._link = link

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        async def call(request: Any, **kwargs: Any) -> Any:
            return await self._link.call(method, request, **kwargs)

        return call

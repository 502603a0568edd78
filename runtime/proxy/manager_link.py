"""The proxy's gRPC channel to the manager: mutual TLS with the node certificate, verifying
the manager as MANAGER_TLS_NAME, replaced by a fresh channel when the certificate rotates."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import grpc

from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import MANAGER_TLS_NAME, channel_options

log = logging.getLogger("wr-proxy.manager")

# Short reconnect backoff: a manager that comes back is noticed within seconds, not after
# grpc's default of up to two minutes.
_RECONNECT: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
# Calls already on the old channel get this long to finish after a rotation.
DRAIN_SECS = 10.0


class ManagerLink:
    """Holds the current channel and stub; callers read `stub` per call."""

    def __init__(self, address: str, credentials: Callable[[], grpc.ChannelCredentials]) -> None:
        self._address = address
        self._credentials = credentials
        self._channel = self._open()
        self.stub = pb_grpc.ManagerServiceStub(self._channel)
        self._draining: dict[asyncio.Task[None], grpc.aio.Channel] = {}

    def _open(self) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(
            self._address, self._credentials(), [*channel_options(MANAGER_TLS_NAME), *_RECONNECT]
        )

    def renew(self) -> None:
        """New calls go over a new channel (new credentials); the old one closes after its
        calls in flight finish (at most DRAIN_SECS)."""
        old, self._channel = self._channel, self._open()
        self.stub = pb_grpc.ManagerServiceStub(self._channel)
        task = asyncio.get_running_loop().create_task(old.close(DRAIN_SECS))
        self._draining[task] = old
        task.add_done_callback(self._drained)
        log.info("manager channel renewed with the reloaded node certificate")

    def _drained(self, task: asyncio.Task[None]) -> None:
        self._draining.pop(task, None)

    async def close(self) -> None:
        for task, old in list(self._draining.items()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await old.close(None)
        await self._channel.close(None)

"""The local copy of the manager's routing table, refreshed by polling with known_version."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import grpc

from runtime.api import wruntime_pb2 as pb
from runtime.proxy.manager_link import ManagerLink

log = logging.getLogger("wr-proxy.table")


class RoutingTableCache:
    """Polls GetRoutingTable; hands every new table to on_table and tells when the manager is back
    (or answers while `pending` says a replay waits).

    When the manager is away the last table stays in use, so routing goes on unchanged.
    on_poll runs before each poll (the node certificate's cheap change check).
    """

    def __init__(
        self,
        manager: ManagerLink,
        poll_interval: float,
        on_table: Callable[[pb.RoutingTable], None],
        on_manager_back: Callable[[], Awaitable[None]],
        on_poll: Callable[[], object] = lambda: None,
        pending: Callable[[], bool] = lambda: False,
    ) -> None:
        self._manager = manager
        self._on_poll = on_poll
        self._interval = poll_interval
        self._on_table = on_table
        self._on_back = on_manager_back
        self._pending = pending
        self.version = 0
        self.loaded = False  # a table (even an empty version 0) has been applied
        self.reachable = False
        self.polls = 0
        self.last_error = ""

    async def poll_once(self) -> bool:
        """One GetRoutingTable call; True when the manager answered."""
        self.polls += 1
        request = pb.GetRoutingTableRequest(known_version=self.version)
        try:
            response = await self._manager.stub.GetRoutingTable(
                request, timeout=max(self._interval, 1.0)
            )
        except grpc.aio.AioRpcError as exc:
            self.last_error = f"{exc.code().name}: {exc.details()}"
            if self.reachable:
                log.warning("manager unreachable, routing from the cached table: %s", exc.details())
            self.reachable = False
            return False
        if not self.reachable:
            self.reachable = True
            self.last_error = ""
            log.info("manager reachable", extra={"routing_table_version": self.version})
            await self._on_back()
        elif self._pending():
            # Failed over between two polls: the link never looked away, but a call that went
            # to the dying manager is still to be replayed.
            await self._on_back()
        if response.HasField("table") and (
            response.table.version != self.version or not self.loaded
        ):
            self.version = response.table.version
            self.loaded = True
            self._on_table(response.table)
            log.info(
                "routing table updated",
                extra={"version": self.version, "rules": len(response.table.rules)},
            )
        return True

    async def run(self) -> None:
        while True:
            try:
                self._on_poll()
            except Exception:  # nor must a failed certificate check
                log.exception("node certificate check failed")
            try:
                await self.poll_once()
            except Exception:  # a bad table must not stop the refreshes
                log.exception("routing table refresh failed")
            await asyncio.sleep(self._interval)

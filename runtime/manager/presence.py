"""This manager's liveness row: written at start, refreshed every heartbeat, deleted on a clean
stop. Other managers, proxies and wrctl learn the live set from it (ListManagers)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from runtime.manager.state.manager_state import ManagerState
from runtime.manager.store import StoreUnavailable

log = logging.getLogger("runtime.manager.presence")
_WILDCARD = frozenset(("", "0.0.0.0", "::"))


def advertised(listen_host: str, bound_port: int, configured: str | None) -> str:
    """The address callers dial: the configured one, else the listen address with its bound
    port, a wildcard host replaced by this machine's name."""
    if configured:
        return configured
    host = socket.gethostname() if listen_host in _WILDCARD else listen_host
    return f"[{host}]:{bound_port}" if ":" in host else f"{host}:{bound_port}"


class ManagerPresence:
    def __init__(
        self,
        state: ManagerState,
        manager_id: str,
        address: str,
        heartbeat_secs: float,
        expiry_secs: float,
    ) -> None:
        self.manager_id = manager_id
        self.address = address
        self.expiry_secs = expiry_secs
        self._state = state
        self._interval = heartbeat_secs
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Write the row now (the manager is listed once it answers), then keep it fresh."""
        await self.beat()
        self._task = asyncio.create_task(self._run(), name="manager-presence")

    async def beat(self) -> None:
        live = await self._state.manager_beat(self.manager_id, self.address, self.expiry_secs)
        log.debug("manager heartbeat", extra={"live": [m.grpc_address for m in live]})

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.beat()
            except Exception as exc:
                # The store may be away (restarting): the next beat writes the row again, even
                # if another manager deleted it as expired meanwhile.
                log.warning("manager heartbeat failed", extra={"error": str(exc)})

    async def stop(self) -> None:
        """Stop beating and leave the live set (best effort: a gone store just lets it expire)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(StoreUnavailable, OSError):
            await asyncio.wait_for(self._state.manager_leave(self.manager_id), 5)

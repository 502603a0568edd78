"""One asyncio loop per worker process for the capabilities' network I/O (asyncpg, the S3
client, the Anthropic SDK).

Host functions run on the guest's thread and must block until their answer is there; the
clients they use are asyncio libraries. So each worker runs one loop in a daemon thread and a
host function hands it a coroutine with `HostLoop.run`, bounded by the request's deadline. On
timeout the coroutine is cancelled on the loop (asyncpg then cancels the query on the server)
and the caller gets `DeadlineExceeded`. While it waits, the guest counts as parked, so the
worker may run other requests on its other threads (see scheduler.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from runtime.engine.guest_run import GuestRun

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The request's deadline passed while a host call waited on the network."""


class HostLoop:
    """An event loop in a daemon thread, started on first use."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="capability-io", daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None) -> T:
        """Run coro on the loop and wait for it, at most `timeout` seconds (None: no bound).
        On timeout the coroutine is cancelled and awaited (up to CANCEL_GRACE_SECS), so its
        cleanup (a query cancelled on the server, a connection given back) is done before
        the caller goes on."""
        task: list[asyncio.Task[T]] = []

        async def tracked() -> T:
            current = asyncio.current_task()
            assert current is not None
            task.append(current)
            return await coro

        future = asyncio.run_coroutine_threadsafe(tracked(), self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            if task:
                stop = asyncio.run_coroutine_threadsafe(_cancel(task[0]), self.loop)
                with contextlib.suppress(BaseException):
                    stop.result(CANCEL_GRACE_SECS)
            future.cancel()
            raise DeadlineExceeded from None

    def run_for(self, run: GuestRun, coro: Coroutine[Any, Any, T]) -> T:
        """Run coro for a guest's request: bounded by its deadline, parked while it waits."""
        left = run.call.deadline - time.monotonic()
        if left <= 0:
            coro.close()
            raise DeadlineExceeded
        run.park(True)
        try:
            return self.run(coro, left)
        finally:
            run.park(False)

    def close(self) -> None:
        with self._lock:
            loop, self._loop = self._loop, None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)


async def _cancel(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(BaseException):
        await task


CANCEL_GRACE_SECS = 2.0
_shared = HostLoop()


def host_loop() -> HostLoop:
    """The worker's one loop, shared by every binding."""
    return _shared

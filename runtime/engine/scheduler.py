"""Which worker runs a request, so that one busy module cannot stop the others.

A worker runs one guest at a time: two threads running wasm in one process cost TLB
shootdowns on every request (reference/engine-rnd.md). So a request goes to an idle worker,
and used to wait for one otherwise, which let one module's slow requests hold every worker
while the other modules queued behind them. Now each module has a share of the workers,
ceil(workers / modules):

* an idle worker goes to the longest-waiting request, of any module: a module alone on the
  engine still uses every worker;
* when none is idle, a module below its share is also placed on a worker whose requests have
  all run long (guest_run.LONG_RUN_SECS: the worker reads its socket on another thread then):
  a busy module slows the others down, but never stops them;
* a module at its share waits, in arrival order, until a worker frees or its deadline passes.

A worker holds at most `threads` requests, parked ones included (each holds an instance and
its memory). A chain of modules on one engine (A calls B calls C ...) holds one thread per
hop while it waits, so `threads` concurrent chains of depth 2 used to take every thread and
stall until their deadlines. A request that comes back from this engine's own guests (it
carries our engine id, wire.CALLER_ENGINE_HEADER) is *nested*: it may take a worker up to
NESTED_FACTOR x `threads`, since the calls waiting on it can only end once it runs. When even
that is full and every held request waits in a call, nested requests are refused at once with
`Saturated` (503), which unwinds the chains, rather than left to wait for their deadline.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Call:
    """A request placed on a worker, as the front counts it."""

    rid: int
    worker: int
    module: str
    parked: bool = False  # waiting in an outbound call: not running guest code
    long: bool = False  # has run long since it started or resumed


@dataclass
class _Load:
    alive: bool = False
    calls: int = 0  # in flight, parked ones included
    running: int = 0  # executing guest code
    short: int = 0  # running and not long: while any, the worker takes no second request


NESTED_FACTOR = 2


class Saturated(Exception):
    """No thread can be given to a nested request, and none will free by itself."""


@dataclass
class _Waiter:
    arrival: int
    future: asyncio.Future[Call | None]
    nested: bool = False


@dataclass
class _Module:
    key: str
    share: int
    running: int = 0
    queue: collections.deque[_Waiter] = field(default_factory=collections.deque)

    def head(self) -> _Waiter | None:
        """The first waiter still waiting (timed-out and cancelled ones are dropped)."""
        while self.queue and self.queue[0].future.done():
            self.queue.popleft()
        return self.queue[0] if self.queue else None

    def nested_head(self) -> _Waiter | None:
        """The first nested waiter: it may be placed where the head may not, and must not
        wait behind it (the head may be what its chain's callers are waiting to finish)."""
        return next((w for w in self.queue if w.nested and not w.future.done()), None)


class Scheduler:
    """The front's count of what each worker and module runs, and the queue of waiters."""

    def __init__(self, workers: int, modules: Iterable[str], threads: int = 16) -> None:
        """threads: a worker's request threads; each request it holds, parked or running,
        takes one, so a worker holding that many is given nothing more."""
        keys = list(modules)
        self._threads = threads
        self.share = max(1, -(-workers // max(1, len(keys))))
        self._loads = [_Load() for _ in range(workers)]
        self._modules = {key: _Module(key, self.share) for key in keys}
        self._calls: dict[int, Call] = {}
        self._rids = itertools.count(1)
        self._arrivals = itertools.count()

    # -- placing requests ----------------------------------------------------------------------

    async def acquire(self, module: str, wait_secs: float, nested: bool = False) -> Call | None:
        """A worker for one request of module (counted as running from now), or None when
        none could be given within wait_secs. nested: the request comes from one of this
        engine's guests (see the module's docstring); it may raise Saturated."""
        state = self._module(module)
        index = self._pick(state, nested)
        ahead = state.nested_head() if nested else state.head()
        if index is not None and ahead is None:
            return self._claim(index, module)
        if nested and index is None and self._saturated():
            raise Saturated(self.saturated_message())
        loop = asyncio.get_running_loop()
        waiter = _Waiter(next(self._arrivals), loop.create_future(), nested)
        state.queue.append(waiter)
        expiry = loop.call_later(wait_secs, _expire, waiter.future)
        self._wake()
        try:
            return await waiter.future
        except asyncio.CancelledError:
            future = waiter.future
            if future.done() and not future.cancelled() and (call := future.result()):
                self.finish(call.rid)  # placed just as its request went away
            raise
        finally:
            expiry.cancel()

    def _module(self, module: str) -> _Module:
        state = self._modules.get(module)
        if state is None:
            state = self._modules[module] = _Module(module, self.share)
        return state

    def _saturated(self) -> bool:
        """Every live worker holds all it may, nested requests included, and runs none."""
        cap = self._threads * NESTED_FACTOR
        alive = [w for w in self._loads if w.alive]
        return bool(alive) and all(w.calls >= cap and w.running == 0 for w in alive)

    def saturated_message(self) -> str:
        return (
            f"every request thread of this engine ({self._threads * NESTED_FACTOR} per worker)"
            " waits in a call to it: a chain of calls this deep and wide cannot be served here"
        )

    def _refuse_nested(self) -> None:
        error = self.saturated_message()
        for state in self._modules.values():
            for waiter in state.queue:
                if waiter.nested and not waiter.future.done():
                    waiter.future.set_exception(Saturated(error))

    def _pick(self, state: _Module, nested: bool = False) -> int | None:
        """An idle worker (fewest parked requests); else, for a module below its share, a
        worker whose requests all run long (fewest of them); else None. A nested request
        may fill a worker up to NESTED_FACTOR x threads."""
        loads = self._loads
        limit = self._threads * (NESTED_FACTOR if nested else 1)
        room = [i for i, w in enumerate(loads) if w.alive and w.calls < limit]
        idle = [i for i in room if loads[i].running == 0]
        if idle:
            return min(idle, key=lambda i: loads[i].calls)
        if state.running >= state.share:
            return None
        open_ = [i for i in room if loads[i].short == 0]
        return min(open_, key=lambda i: loads[i].running) if open_ else None

    def _claim(self, index: int, module: str) -> Call:
        call = Call(next(self._rids), index, module)
        self._calls[call.rid] = call
        load = self._loads[index]
        load.calls += 1
        load.running += 1
        load.short += 1
        self._modules[module].running += 1
        return call

    def _wake(self) -> None:
        """Give free workers to waiting requests, oldest first, as long as any can be placed."""
        while True:
            chosen: tuple[_Module, _Waiter, int] | None = None
            for state in self._modules.values():
                for head in (state.head(), state.nested_head()):
                    if head is None or (chosen and chosen[1].arrival < head.arrival):
                        continue
                    index = self._pick(state, head.nested)
                    if index is not None:
                        chosen = (state, head, index)
            if chosen is None:
                return
            state, waiter, index = chosen
            state.queue.remove(waiter)
            waiter.future.set_result(self._claim(index, state.key))

    # -- what workers report -------------------------------------------------------------------

    def parked(self, rid: int, parked: bool) -> None:
        """The request waits in (is back from) an outbound call: it stops (resumes) running."""
        call = self._calls.get(rid)
        if call is None or call.parked == parked:
            return
        sign = -1 if parked else 1
        load, state = self._loads[call.worker], self._modules[call.module]
        load.running += sign
        state.running += sign
        if parked and not call.long:
            load.short -= 1
        elif not parked:
            load.short += 1  # a resumed request counts as short until it runs long again
        call.parked, call.long = parked, False
        if parked:
            self._wake()
            if self._saturated():
                self._refuse_nested()

    def went_long(self, rid: int) -> None:
        call = self._calls.get(rid)
        if call is None or call.parked or call.long:
            return
        call.long = True
        self._loads[call.worker].short -= 1
        self._wake()

    def finish(self, rid: int) -> Call | None:
        """The request is answered (or given up): its worker and share are free again."""
        call = self._calls.pop(rid, None)
        if call is None:
            return None
        load = self._loads[call.worker]
        load.calls -= 1
        if not call.parked:
            load.running -= 1
            self._modules[call.module].running -= 1
            if not call.long:
                load.short -= 1
        self._wake()
        return call

    # -- workers coming and going --------------------------------------------------------------

    def worker_up(self, index: int) -> None:
        self._loads[index] = _Load(alive=True)
        self._wake()

    def worker_down(self, index: int) -> list[int]:
        """Mark a worker gone; the requests it had, which the caller fails."""
        self._loads[index].alive = False
        rids = [rid for rid, call in self._calls.items() if call.worker == index]
        for rid in rids:
            self.finish(rid)
        return rids

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Per module: its share, requests running and requests waiting (for /__health)."""
        return {
            key: {
                "share": state.share,
                "running": state.running,
                "waiting": sum(not w.future.done() for w in state.queue),
            }
            for key, state in sorted(self._modules.items())
        }


def _expire(future: asyncio.Future[Call | None]) -> None:
    if not future.done():
        future.set_result(None)

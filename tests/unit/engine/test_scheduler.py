"""The front's scheduler without processes: idle workers first, a module's share of busy ones,
waiting in arrival order with a deadline, parked and long requests."""

from __future__ import annotations

import asyncio

import pytest

from runtime.engine.scheduler import Call, Saturated, Scheduler

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _scheduler(workers: int, modules: list[str]) -> Scheduler:
    scheduler = Scheduler(workers, modules)
    for i in range(workers):
        scheduler.worker_up(i)
    return scheduler


async def _placed(scheduler: Scheduler, module: str) -> Call:
    call = await scheduler.acquire(module, 1)
    assert call is not None
    return call


async def test_share_is_workers_over_modules_rounded_up() -> None:
    assert Scheduler(2, ["a", "b"]).share == 1
    assert Scheduler(4, ["a", "b", "c"]).share == 2
    assert Scheduler(1, ["a", "b", "c"]).share == 1
    assert Scheduler(3, ["a"]).share == 3


async def test_a_module_alone_uses_every_idle_worker() -> None:
    s = _scheduler(2, ["a", "b"])
    first, second = await _placed(s, "a"), await _placed(s, "a")
    assert {first.worker, second.worker} == {0, 1}


async def test_a_module_under_its_share_joins_a_worker_whose_request_runs_long() -> None:
    s = _scheduler(2, ["a", "b"])
    one, two = await _placed(s, "a"), await _placed(s, "a")
    waiting = asyncio.ensure_future(s.acquire("b", 5))
    await asyncio.sleep(0)
    assert not waiting.done()  # both workers run requests that have not run long
    s.went_long(two.rid)
    placed = await asyncio.wait_for(waiting, 1)
    assert placed is not None and placed.worker == two.worker
    assert s.snapshot()["b"] == {"share": 1, "running": 1, "waiting": 0}
    # "a" is over its share: it waits for an idle worker even though one is long
    s.went_long(one.rid)
    more = asyncio.ensure_future(s.acquire("a", 5))
    await asyncio.sleep(0)
    assert not more.done() and s.snapshot()["a"]["waiting"] == 1
    s.finish(one.rid)
    again = await asyncio.wait_for(more, 1)
    assert again is not None and again.worker == one.worker


async def test_waiters_are_served_in_arrival_order_and_expire() -> None:
    s = _scheduler(1, ["a", "b"])
    busy = await _placed(s, "a")
    late = asyncio.ensure_future(s.acquire("a", 0.05))
    first = asyncio.ensure_future(s.acquire("b", 5))
    second = asyncio.ensure_future(s.acquire("a", 5))
    assert await late is None  # its deadline passed with no worker free
    s.finish(busy.rid)
    got = await asyncio.wait_for(first, 1)
    assert got is not None and got.module == "b" and not second.done()
    s.finish(got.rid)
    got = await asyncio.wait_for(second, 1)
    assert got is not None and got.module == "a"


async def test_a_parked_request_frees_its_worker_until_it_resumes() -> None:
    s = _scheduler(1, ["a", "b"])
    caller = await _placed(s, "a")
    s.parked(caller.rid, True)
    callee = await _placed(s, "b")  # the idle worker is free while the caller waits
    assert callee.worker == caller.worker
    s.parked(caller.rid, False)
    s.finish(callee.rid)
    s.finish(caller.rid)
    assert s.snapshot() == {
        "a": {"share": 1, "running": 0, "waiting": 0},
        "b": {"share": 1, "running": 0, "waiting": 0},
    }


async def test_a_cancelled_waiter_gives_its_place_back() -> None:
    s = _scheduler(1, ["a"])
    busy = await _placed(s, "a")
    waiter = asyncio.ensure_future(s.acquire("a", 5))
    await asyncio.sleep(0)
    waiter.cancel()
    s.finish(busy.rid)
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert s.snapshot()["a"] == {"share": 1, "running": 0, "waiting": 0}
    assert (await _placed(s, "a")).worker == 0


async def test_a_dead_worker_takes_no_requests_and_hands_back_its_own() -> None:
    s = _scheduler(2, ["a"])
    call = await _placed(s, "a")
    assert s.worker_down(call.worker) == [call.rid]
    other = await _placed(s, "a")
    assert other.worker != call.worker
    assert s.snapshot()["a"]["running"] == 1


async def test_a_worker_with_every_thread_taken_gets_nothing_more() -> None:
    s = Scheduler(1, ["a", "b"], threads=2)
    s.worker_up(0)
    first = await _placed(s, "a")
    s.parked(first.rid, True)  # parked, but still holding a thread
    second = await _placed(s, "b")
    s.parked(second.rid, True)
    third = asyncio.ensure_future(s.acquire("a", 5))
    await asyncio.sleep(0)
    assert not third.done()  # the worker is idle, but has no thread left to read with
    s.finish(first.rid)
    assert await asyncio.wait_for(third, 1) is not None


async def test_a_callee_goes_to_the_worker_without_the_parked_caller() -> None:
    s = _scheduler(2, ["a", "b"])
    caller = await _placed(s, "a")
    s.parked(caller.rid, True)
    callee = await _placed(s, "b")  # both run nothing; the other holds no parked request
    assert callee.worker != caller.worker


async def test_a_call_back_into_the_engine_may_use_the_overflow_threads() -> None:
    s = Scheduler(1, ["a", "b"], threads=2)
    s.worker_up(0)
    callers = []
    for _ in range(2):  # both threads wait in calls
        callers.append(await _placed(s, "a"))
        s.parked(callers[-1].rid, True)
    outside = asyncio.ensure_future(s.acquire("b", 30))
    await asyncio.sleep(0)
    assert not outside.done()  # a request from outside waits for a thread
    # the callees of the two callers come back from this engine: they pass the waiter
    callees = []
    for _ in range(2):  # and each calls again: all 4 (2 x 2) threads wait
        callee = await asyncio.wait_for(s.acquire("b", 30, nested=True), 1)
        assert callee is not None
        callees.append(callee)
        s.parked(callee.rid, True)
    assert not outside.done()
    with pytest.raises(Saturated, match="4 per worker"):
        await s.acquire("b", 30, nested=True)
    for c in callees:
        s.finish(c.rid)
    for c in callers:
        s.finish(c.rid)
    assert (await asyncio.wait_for(outside, 1)) is not None


async def test_a_nested_waiter_is_refused_when_the_last_thread_parks() -> None:
    s = Scheduler(1, ["a"], threads=1)
    s.worker_up(0)
    first = await _placed(s, "a")
    s.parked(first.rid, True)
    second = await asyncio.wait_for(s.acquire("a", 30, nested=True), 1)
    waiting = asyncio.ensure_future(s.acquire("a", 30, nested=True))
    await asyncio.sleep(0)
    assert not waiting.done()  # the second still runs
    assert second is not None
    s.parked(second.rid, True)
    with pytest.raises(Saturated):
        await asyncio.wait_for(waiting, 1)

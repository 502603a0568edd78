"""The manager's dispatcher: fire due schedules, claim due jobs, run each attempt through the
local proxy, finalize behind the claim's fence.

Every phase is short and separate, as in upstream's scheduler: a claim is one transaction
(rows locked with SKIP LOCKED on PostgreSQL, so managers sharing the database take disjoint
jobs); the HTTP attempt runs outside any transaction; the finalize names the claim_id and is
dropped when the lease was meanwhile taken over. Delivery is at least once: an attempt whose
engine (or manager) dies is claimed again once its lease expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable

import aiohttp
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from runtime import wire
from runtime.manager.config import JobsConfig
from runtime.manager.metrics import ManagerMetrics
from runtime.manager.state.jobs import COMPLETE, DEAD, Claimed, Outcome
from runtime.manager.state.manager_state import ManagerState

log = logging.getLogger("runtime.manager.jobs")
_tracer = trace.get_tracer("wr-manager.jobs")
DEPTH_EVERY_SECS = 1.0  # how often the queue-depth gauges are refreshed
_ERROR_BODY_CHARS = 500  # of a failed attempt's answer kept in its error


def backoff_for(config: JobsConfig) -> Callable[[int], float]:
    """Retry n (n = attempts made) waits min(cap, base * 2**(n-1)), less up to 20% jitter so
    jobs that failed together do not all retry in the same instant."""

    def delay(attempt: int) -> float:
        raw = min(config.retry_cap_secs, config.retry_base_secs * 2.0 ** max(attempt - 1, 0))
        return float(raw * random.uniform(0.8, 1.0))

    return delay


class _Failed(Exception):
    """An attempt that did not succeed; the message is the job's error."""


class JobRunner:
    """Runs in one manager: `start()`, `wake()` after a submit, `stop()`."""

    def __init__(
        self,
        state: ManagerState,
        config: JobsConfig,
        proxy_address: str,
        metrics: ManagerMetrics,
        claimed_by: str,
    ) -> None:
        self.state = state
        self.config = config
        self.proxy_address = proxy_address
        self.metrics = metrics
        self.claimed_by = claimed_by
        self.backoff = backoff_for(config)
        self._wake = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._depth_at = 0.0
        self._schedules_at = 0.0
        # Outcomes waiting for the next round, which commits them together.
        self._outcomes: list[tuple[Outcome, asyncio.Future[str | None]]] = []

    def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.config.concurrency, force_close=False)
        # No User-Agent / Accept / Accept-Encoding: every header of an attempt is carried into
        # the worker guest, and a no-op job should cost the engine what a no-op request does.
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        )
        self._task = asyncio.get_running_loop().create_task(self._loop())

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming; attempts in flight are abandoned (their leases expire, so another
        manager or the next start runs them again)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if self._session is not None:
            await self._session.close()

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                busy = await self.tick()
            except Exception:
                log.exception("job dispatcher tick failed")
                busy = False
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.config.poll_secs)

    async def tick(self) -> bool:
        """One round, one transaction: record the outcomes that arrived, fire due schedules
        (once per poll interval, not on every wake-up), claim what there is room for. Under
        load a round finalizes and claims a burst of jobs with one commit (one fsync on
        SQLite) instead of one each. Returns whether it did anything (then it runs again)."""
        now = time.monotonic()
        schedules = now - self._schedules_at >= self.config.poll_secs
        if schedules:
            self._schedules_at = now
        batch, self._outcomes = self._outcomes, []
        room = self.config.concurrency - (len(self._inflight) - len(batch))
        try:
            cycle = await self.state.job_cycle(
                [o for o, _ in batch],
                self.backoff,
                schedules,
                max(room, 0),
                self.claimed_by,
                self.config.lease_grace_secs,
            )
        except Exception as exc:  # the store is down: the leases expire, the jobs run again
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            raise
        for (_, future), state in zip(batch, cycle.finalized, strict=True):
            if not future.done():
                future.set_result(state)
        for fired in cycle.fired:
            self.metrics.schedule_fires.labels(fired.schedule).inc()
            self.metrics.schedule_lag.observe(max(fired.lag, 0.0))
            log.info("schedule fired", extra={"schedule": fired.schedule, "job_id": fired.job_id})
        for job_id, _ in cycle.died:
            self._count(DEAD)
            log.warning("job dead: its last lease expired", extra={"job_id": job_id})
        for claim in cycle.claimed:
            task = asyncio.get_running_loop().create_task(self._run(claim))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        if now - self._depth_at >= DEPTH_EVERY_SECS:
            self._depth_at = now
            for state, count in (await self.state.job_depth()).items():
                self.metrics.jobs.labels(state).set(count)
        return bool(batch or cycle.claimed or self._outcomes)

    def _count(self, outcome: str) -> None:
        self.metrics.job_attempts.labels(outcome).inc()
        if outcome == DEAD:
            self.metrics.jobs_dead.inc()

    async def _run(self, claim: Claimed) -> None:
        self.metrics.job_start_delay.observe(max(time.time() - claim.due_at, 0.0))
        parent = propagate.extract({"traceparent": claim.traceparent} if claim.traceparent else {})
        attributes: dict[str, str | int] = {
            "wr.job.id": claim.job_id,
            "wr.job.type": claim.job_type,
            "wr.job.attempt": claim.attempt,
            "wr.destination": wire.module_host(claim.namespace, claim.module),
        }
        if claim.schedule:
            attributes["wr.schedule"] = claim.schedule
        with _tracer.start_as_current_span(
            f"job {claim.job_type}", context=parent, kind=SpanKind.CLIENT, attributes=attributes
        ) as span:
            start = time.perf_counter()
            try:
                result = await self._attempt(claim)
            except _Failed as exc:
                error: str | None = str(exc)
            else:
                error = None
            self.metrics.job_seconds.observe(time.perf_counter() - start)
            if error is not None:
                span.set_status(Status(StatusCode.ERROR, error))
            try:
                if error is None:
                    outcome = await self._finalize_success(claim, result)
                else:
                    outcome = await self._finalize_failure(claim, error)
            except Exception as exc:  # the store is unreachable: the lease runs out instead
                log.warning(
                    "job outcome not recorded; the job runs again once its lease expires",
                    extra={"job_id": claim.job_id, "why": str(exc)},
                )
                outcome = "unrecorded"
            span.set_attribute("wr.job.outcome", outcome)

    async def _finalize(self, outcome: Outcome) -> str | None:
        """Hand the outcome to the next round and wait for it to be committed."""
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._outcomes.append((outcome, future))
        self._wake.set()
        return await future

    async def _finalize_success(self, claim: Claimed, result: bytes) -> str:
        if await self._finalize(Outcome(claim.job_id, claim.claim_id, result)) == COMPLETE:
            self._count(COMPLETE)
            return COMPLETE
        return self._stale(claim)

    async def _finalize_failure(self, claim: Claimed, error: str) -> str:
        state = await self._finalize(Outcome(claim.job_id, claim.claim_id, None, error))
        if state is None:
            return self._stale(claim)
        outcome = DEAD if state == DEAD else "retry"
        self._count(outcome)
        log.log(
            logging.WARNING if state == DEAD else logging.INFO,
            "job attempt failed",
            extra={"job_id": claim.job_id, "attempt": claim.attempt, "why": error, "now": state},
        )
        return outcome

    def _stale(self, claim: Claimed) -> str:
        # The lease expired and another claim took the job: its outcome is the one that counts.
        self._count("stale")
        log.info(
            "job attempt finished after its lease was taken over; result dropped",
            extra={"job_id": claim.job_id, "attempt": claim.attempt},
        )
        return "stale"

    async def _attempt(self, claim: Claimed) -> bytes:
        """POST the payload to the worker through the proxy; the result, or _Failed."""
        assert self._session is not None
        path = wire.JOB_PATH_PREFIX + claim.job_type
        headers = {
            wire.DESTINATION_HEADER: f"http://{wire.module_host(claim.namespace, claim.module)}"
            + path,
            wire.JOB_ID_HEADER: claim.job_id,
            wire.JOB_ATTEMPT_HEADER: str(claim.attempt),
            "content-type": "application/octet-stream",
        }
        if claim.version:
            headers[wire.VERSION_HEADER] = claim.version  # a full version: exactly that one
        propagate.inject(headers)
        limit = self.config.max_bytes
        prefix = f"attempt {claim.attempt}"
        try:
            async with self._session.post(
                self.proxy_address + path,
                data=claim.payload,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=claim.timeout_secs),
            ) as response:
                body = await response.content.read(limit + 1)
                if 200 <= response.status < 300:
                    if len(body) > limit:
                        raise _Failed(
                            f"{prefix}: the result is over the job size limit of {limit} bytes"
                        )
                    return body
                where = response.headers.get(wire.PROXY_ERROR_HEADER)
                origin = f" (answered by the proxy of node {where})" if where else ""
                text = body[:_ERROR_BODY_CHARS].decode("utf-8", "replace").strip()
                raise _Failed(f"{prefix}: HTTP {response.status}{origin}: {text}")
        except TimeoutError:
            raise _Failed(
                f"{prefix}: no answer within its timeout of {claim.timeout_secs}s"
            ) from None
        except aiohttp.ClientError as exc:
            raise _Failed(f"{prefix}: via the proxy at {self.proxy_address}: {exc}") from None

"""ManagerState: every manager operation as one transaction over a store backend."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from runtime.api import wruntime_pb2 as pb
from runtime.identity import Identity
from runtime.manager.secretbox import SecretBox
from runtime.manager.state import (
    apply_lock,
    authority,
    engines,
    jobs,
    managers,
    releases,
    routing,
    schedules,
    secrets,
)
from runtime.manager.state.engines import Timeouts
from runtime.manager.store import Backend, Tx

Clock = Callable[[], float]


class ManagerState:
    """The manager's state, whichever backend holds it. `clock` is injectable for tests."""

    def __init__(
        self, backend: Backend, box: SecretBox, timeouts: Timeouts, clock: Clock = time.time
    ) -> None:
        self.backend = backend
        self.timeouts = timeouts
        self._box = box
        self._clock = clock
        # Submits waiting for the next group commit, and whether one is being written.
        self._submits: list[tuple[jobs.NewJob, asyncio.Future[tuple[str, bool]]]] = []
        self._submitting = False

    # ── engines ──────────────────────────────────────────────────────────

    async def register_engine(
        self, reg: pb.EngineRegistration, node: Identity, hosts: frozenset[str]
    ) -> tuple[pb.EngineRegistration, int, list[pb.NamespaceSecrets]]:
        """Check `node`'s authority, resolve the requested secrets, then store the
        registration (its node filled in): all or nothing, in one transaction, so a release
        recorded meanwhile cannot slip between the check and the write."""

        async def op(tx: Tx) -> tuple[pb.EngineRegistration, int, list[pb.NamespaceSecrets]]:
            await self._health_lock(tx, exclusive=False)
            stored = await authority.check_registration(tx, reg, node, hosts)
            resolved = await secrets.resolve(tx, self._box, stored.secrets)
            version = await engines.register(tx, stored, node.uri, self._clock())
            return stored, version, resolved

        return await self.backend.run(op)

    async def deregister_engine(self, engine_id: str, node: Identity | None = None) -> None:
        """`node`: the calling node, which may deregister only its own engines (None: an
        operator, who may deregister any)."""
        now = self._clock()

        async def op(tx: Tx) -> None:
            await self._health_lock(tx, exclusive=False)
            if node is not None:
                await authority.check_owner(tx, engine_id, node, "DeregisterEngine")
            await engines.deregister(tx, engine_id, now, self.timeouts)

        await self.backend.run(op)

    async def heartbeat(
        self, engine_id: str, healthy: list[pb.ModuleDescriptor], node: Identity
    ) -> list[tuple[str, bool]]:
        now = self._clock()

        async def op(tx: Tx) -> list[tuple[str, bool]]:
            await self._health_lock(tx, exclusive=False)
            return await engines.heartbeat(tx, engine_id, healthy, now, self.timeouts, node)

        return await self.backend.run(op)

    async def list_engines(self) -> list[pb.EngineStatus]:
        now = self._clock()
        return await self.backend.run(
            lambda tx: engines.list_status(tx, now, self.timeouts), write=False
        )

    async def refresh_health(self) -> list[tuple[str, bool]]:
        """Expire stale engines and modules (and revive fresh ones): the monitor's tick."""
        now = self._clock()

        async def op(tx: Tx) -> list[tuple[str, bool]]:
            await self._health_lock(tx, exclusive=True)
            return await engines.refresh_health(tx, now, self.timeouts)

        return await self.backend.run(op)

    async def forget_departed(self) -> list[str]:
        """Delete engines gone for longer than the retention, with their routes."""
        now = self._clock()

        async def op(tx: Tx) -> list[str]:
            await self._health_lock(tx, exclusive=True)
            return await engines.forget_departed(tx, now, self.timeouts)

        return await self.backend.run(op)

    async def engine_counts(self) -> tuple[int, int]:
        now = self._clock()
        return await self.backend.run(
            lambda tx: engines.counts(tx, now, self.timeouts), write=False
        )

    async def schema(self, namespace: str, name: str, version: str) -> bytes:
        return await self.backend.run(
            lambda tx: engines.schema(tx, namespace, name, version), write=False
        )

    # ── routing ──────────────────────────────────────────────────────────

    async def routing_table(self, known_version: int = 0) -> pb.RoutingTable | None:
        """The table, or None when known_version (non-zero) is already the current version."""

        async def op(tx: Tx) -> pb.RoutingTable | None:
            if known_version and await routing.current_version(tx) == known_version:
                return None
            return await routing.table(tx)

        return await self.backend.run(op, write=False)

    async def routing_version(self) -> int:
        return await self.backend.run(routing.current_version, write=False)

    async def upsert_rule(self, rule: pb.RoutingRule) -> int:
        return await self.backend.run(lambda tx: routing.upsert(tx, rule))

    async def delete_rule(self, rule_id: str) -> int:
        return await self.backend.run(lambda tx: routing.delete(tx, rule_id))

    # ── secrets ──────────────────────────────────────────────────────────

    async def set_secret(self, namespace: str, key: str, value: str) -> int:
        now = self._clock()
        return await self.backend.run(
            lambda tx: secrets.put(tx, self._box, namespace, key, value, now)
        )

    async def delete_secret(self, namespace: str, key: str) -> int:
        return await self.backend.run(lambda tx: secrets.delete(tx, namespace, key))

    async def list_secrets(self, namespace: str) -> list[pb.SecretEntry]:
        return await self.backend.run(lambda tx: secrets.list_keys(tx, namespace), write=False)

    async def verify_secrets(self) -> int:
        """Decrypt every stored secret once (startup check of the key); return the count."""
        return await self.backend.run(lambda tx: secrets.verify_all(tx, self._box), write=False)

    # ── releases, cluster state, apply lock ─────────────────────────────

    async def cluster_state(self) -> pb.GetClusterStateResponse:
        now = self._clock()
        return await self.backend.run(
            lambda tx: releases.cluster_state(tx, now, self.timeouts), write=False
        )

    async def record_release(self, release: pb.ReleaseRecord, lock_id: str) -> int:
        now = self._clock()
        return await self.backend.run(lambda tx: releases.record(tx, release, lock_id, now))

    async def release_history(self, target: str, limit: int) -> list[pb.ReleaseRecord]:
        return await self.backend.run(lambda tx: releases.history(tx, target, limit), write=False)

    async def delete_release(self, target: str, lock_id: str) -> int:
        now = self._clock()
        return await self.backend.run(lambda tx: releases.delete(tx, target, lock_id, now))

    async def acquire_lock(self, holder: str, reason: str, ttl: float) -> tuple[bool, pb.ApplyLock]:
        now = self._clock()
        return await self.backend.run(lambda tx: apply_lock.acquire(tx, holder, reason, ttl, now))

    async def renew_lock(self, lock_id: str, ttl: float) -> pb.ApplyLock:
        now = self._clock()
        return await self.backend.run(lambda tx: apply_lock.renew(tx, lock_id, ttl, now))

    async def release_lock(self, lock_id: str) -> None:
        await self.backend.run(lambda tx: apply_lock.release(tx, lock_id))

    async def force_unlock(self, lock_id: str) -> None:
        # Same effect as release; a separate name so logs and metrics tell them apart.
        await self.backend.run(lambda tx: apply_lock.release(tx, lock_id))

    # ── manager liveness ────────────────────────────────────────────────

    async def manager_beat(
        self, manager_id: str, grpc_address: str, expiry: float
    ) -> list[pb.ManagerInfo]:
        now = self._clock()
        return await self.backend.run(
            lambda tx: managers.beat(tx, manager_id, grpc_address, now, expiry)
        )

    async def live_managers(self, expiry: float) -> list[pb.ManagerInfo]:
        now = self._clock()
        return await self.backend.run(lambda tx: managers.live(tx, now, expiry), write=False)

    async def manager_leave(self, manager_id: str) -> None:
        await self.backend.run(lambda tx: managers.leave(tx, manager_id))

    async def _health_lock(self, tx: Tx, exclusive: bool) -> None:
        if self.backend.kind == "postgres":
            await engines.health_lock(tx, exclusive)

    # ── jobs and schedules ──────────────────────────────────────────────

    @property
    def _skip_locked(self) -> bool:
        # Row locks that other managers skip exist on PostgreSQL; SQLite has one writer.
        return self.backend.kind == "postgres"

    async def submit_job(self, job: jobs.NewJob) -> tuple[str, bool]:
        """Store a job. Submits that arrive while one transaction is being written wait and
        go together in the next one (group commit: one fsync for a burst, not one each)."""
        future: asyncio.Future[tuple[str, bool]] = asyncio.get_running_loop().create_future()
        self._submits.append((job, future))
        if not self._submitting:
            self._submitting = True
            try:
                while self._submits:
                    batch, self._submits = self._submits, []
                    await self._write_submits(batch)
            finally:
                self._submitting = False
        return await future

    async def _write_submits(
        self, batch: list[tuple[jobs.NewJob, asyncio.Future[tuple[str, bool]]]]
    ) -> None:
        now = self._clock()

        async def op(tx: Tx) -> list[tuple[str, bool]]:
            return await jobs.submit_many(tx, [job for job, _ in batch], now)

        try:
            results = await self.backend.run(op)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)

    async def job_status(self, job_id: str) -> pb.GetJobStatusResponse:
        return await self.backend.run(lambda tx: jobs.status(tx, job_id), write=False)

    async def list_jobs(
        self, namespace: str, module: str, state: str, limit: int
    ) -> list[pb.GetJobStatusResponse]:
        return await self.backend.run(
            lambda tx: jobs.list_jobs(tx, namespace, module, state, limit), write=False
        )

    async def claim_jobs(
        self, limit: int, claimed_by: str, grace: float
    ) -> tuple[list[jobs.Claimed], list[tuple[str, str]]]:
        cycle = await self.job_cycle([], _no_backoff, False, limit, claimed_by, grace)
        return cycle.claimed, cycle.died

    async def complete_job(self, job_id: str, claim_id: str, result: bytes) -> bool:
        outcome = jobs.Outcome(job_id, claim_id, result)
        [state] = (await self.job_cycle([outcome], _no_backoff, False, 0, "", 0.0)).finalized
        return state == jobs.COMPLETE

    async def fail_job(
        self, job_id: str, claim_id: str, error: str, backoff: Callable[[int], float]
    ) -> str | None:
        outcome = jobs.Outcome(job_id, claim_id, None, error)
        return (await self.job_cycle([outcome], backoff, False, 0, "", 0.0)).finalized[0]

    async def job_cycle(
        self,
        outcomes: list[jobs.Outcome],
        backoff: Callable[[int], float],
        fire: bool,
        room: int,
        claimed_by: str,
        grace: float,
    ) -> jobs.Cycle:
        """One dispatcher round in one transaction: record `outcomes` (per outcome the job's
        new state, None when its claim was stale), fire due schedules when `fire`, claim up
        to `room` due jobs."""
        now = self._clock()

        async def op(tx: Tx) -> jobs.Cycle:
            finalized = await jobs.finalize_many(tx, outcomes, now, backoff)
            fired = await schedules.fire_due(tx, now, self._skip_locked) if fire else []
            claimed: list[jobs.Claimed] = []
            died: list[tuple[str, str]] = []
            if room > 0:
                claimed, died = await jobs.claim(
                    tx, now, room, claimed_by, grace, self._skip_locked
                )
                await jobs.schedule_deaths(tx, died)
            return jobs.Cycle(finalized, fired, claimed, died)

        # Not durable (no fsync of its own): losing this round to a power loss only means its
        # work is done again (a lost claim or finalize: the job runs again once its lease
        # expires; a lost fire: the schedule fires again). At least once holds; a submit
        # (submit_job) is durable before it answers.
        return await self.backend.run(op, durable=False)

    async def job_depth(self) -> dict[str, int]:
        return await self.backend.run(jobs.depth, write=False)

    async def upsert_schedule(self, req: pb.UpsertScheduleRequest, timeout_secs: int) -> bool:
        now = self._clock()
        return await self.backend.run(lambda tx: schedules.upsert(tx, req, timeout_secs, now))

    async def delete_schedule(self, name: str) -> None:
        await self.backend.run(lambda tx: schedules.delete(tx, name))

    async def list_schedules(self, namespace: str) -> list[pb.Schedule]:
        return await self.backend.run(
            lambda tx: schedules.list_schedules(tx, namespace), write=False
        )

    async def fire_schedules(self) -> list[schedules.Fired]:
        now = self._clock()
        return await self.backend.run(lambda tx: schedules.fire_due(tx, now, self._skip_locked))


def _no_backoff(attempt: int) -> float:
    return 0.0

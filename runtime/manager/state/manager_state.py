"""ManagerState: every manager operation as one transaction over a store backend."""

from __future__ import annotations

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

    # ── engines ──────────────────────────────────────────────────────────

    async def register_engine(
        self, reg: pb.EngineRegistration, node: Identity, hosts: frozenset[str]
    ) -> tuple[pb.EngineRegistration, int, list[pb.NamespaceSecrets]]:
        """Check `node`'s authority, resolve the requested secrets, then store the
        registration (its node filled in): all or nothing, in one transaction, so a release
        recorded meanwhile cannot slip between the check and the write."""

        async def op(tx: Tx) -> tuple[pb.EngineRegistration, int, list[pb.NamespaceSecrets]]:
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
            if node is not None:
                await authority.check_owner(tx, engine_id, node, "DeregisterEngine")
            await engines.deregister(tx, engine_id, now, self.timeouts)

        await self.backend.run(op)

    async def heartbeat(
        self, engine_id: str, healthy: list[pb.ModuleDescriptor], node: Identity
    ) -> list[tuple[str, bool]]:
        now = self._clock()

        return await self.backend.run(
            lambda tx: engines.heartbeat(tx, engine_id, healthy, now, self.timeouts, node)
        )

    async def list_engines(self) -> list[pb.EngineStatus]:
        now = self._clock()
        return await self.backend.run(
            lambda tx: engines.list_status(tx, now, self.timeouts), write=False
        )

    async def refresh_health(self) -> list[tuple[str, bool]]:
        """Expire stale engines and modules (and revive fresh ones): the monitor's tick."""
        now = self._clock()
        return await self.backend.run(lambda tx: engines.refresh_health(tx, now, self.timeouts))

    async def forget_departed(self) -> list[str]:
        """Delete engines gone for longer than the retention, with their routes."""
        now = self._clock()
        return await self.backend.run(lambda tx: engines.forget_departed(tx, now, self.timeouts))

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

    # ── jobs and schedules ──────────────────────────────────────────────

    @property
    def _skip_locked(self) -> bool:
        # Row locks that other managers skip exist on PostgreSQL; SQLite has one writer.
        return self.backend.kind == "postgres"

    async def submit_job(self, job: jobs.NewJob) -> tuple[str, bool]:
        now = self._clock()
        return await self.backend.run(lambda tx: jobs.submit(tx, job, now))

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
        now = self._clock()

        async def op(tx: Tx) -> tuple[list[jobs.Claimed], list[tuple[str, str]]]:
            claimed, died = await jobs.claim(tx, now, limit, claimed_by, grace, self._skip_locked)
            await jobs.schedule_deaths(tx, died)
            return claimed, died

        return await self.backend.run(op)

    async def complete_job(self, job_id: str, claim_id: str, result: bytes) -> bool:
        now = self._clock()
        return await self.backend.run(lambda tx: jobs.complete(tx, job_id, claim_id, result, now))

    async def fail_job(
        self, job_id: str, claim_id: str, error: str, backoff: Callable[[int], float]
    ) -> str | None:
        now = self._clock()
        return await self.backend.run(
            lambda tx: jobs.fail(tx, job_id, claim_id, error, now, backoff)
        )

    async def finalize_jobs(
        self, outcomes: list[jobs.Outcome], backoff: Callable[[int], float]
    ) -> list[str | None]:
        """Record several attempts' outcomes in one transaction (one commit for a burst of
        answers); per outcome the job's new state, or None when its claim was stale."""
        now = self._clock()

        async def op(tx: Tx) -> list[str | None]:
            return [await jobs.finalize(tx, outcome, now, backoff) for outcome in outcomes]

        return await self.backend.run(op)

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

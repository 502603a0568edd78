"""The job queue and schedules in the manager's store (SQLite and PostgreSQL), driven through
the real gRPC API and the state's claim/finalize operations with a clock the test moves.
Dispatch is off here: tests/integration/jobs runs attempts through real engines."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.manager.config import JobsConfig, ManagerConfig
from runtime.manager.server import ManagerServer
from runtime.manager.state.jobs import Outcome
from runtime.manager.state.manager_state import ManagerState
from runtime.manager.store import Tx
from tests.integration.manager.builders import module, registration
from tests.integration.manager.conftest import FakeClock, NodeStubs

pytestmark = pytest.mark.asyncio(loop_scope="session")
GRACE = 5.0


def no_backoff(attempt: int) -> float:
    return 10.0 * attempt


@pytest.fixture
def manager_config(manager_config: ManagerConfig) -> ManagerConfig:
    return manager_config.model_copy(
        update={"jobs": JobsConfig(dispatch=False, max_bytes=1000, timeout_secs=20)}
    )


def submit(**fields: object) -> pb.SubmitJobRequest:
    base: dict[str, object] = {
        "worker_namespace": "example",
        "worker_name": "echo",
        "job_type": "resize",
        "payload": b"{}",
    }
    return pb.SubmitJobRequest(**{**base, **fields})


def state_of(manager: ManagerServer) -> ManagerState:
    assert manager.state is not None
    return manager.state


async def test_submit_status_and_idempotency(stub: pb_grpc.ManagerServiceStub) -> None:
    first = await stub.SubmitJob(submit(idempotency_key="k1", payload=b"one"))
    again = await stub.SubmitJob(submit(idempotency_key="k1", payload=b"two"))
    other_module = await stub.SubmitJob(submit(worker_name="other", idempotency_key="k1"))
    plain = await stub.SubmitJob(submit())
    assert (first.existing, again.existing, other_module.existing) == (False, True, False)
    assert again.job_id == first.job_id
    assert len({first.job_id, other_module.job_id, plain.job_id}) == 3
    status = await stub.GetJobStatus(pb.GetJobStatusRequest(job_id=first.job_id))
    assert status.status == pb.JOB_STATE_PENDING
    assert (status.attempt, status.max_attempts, status.idempotency_key) == (0, 3, "k1")
    listed = await stub.ListJobs(pb.ListJobsRequest(worker_namespace="example", worker_name="echo"))
    assert {j.job_id for j in listed.jobs} == {first.job_id, plain.job_id}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetJobStatus(pb.GetJobStatusRequest(job_id="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_payload_limit_and_bad_fields(stub: pb_grpc.ManagerServiceStub) -> None:
    for request, field in [
        (submit(payload=b"x" * 1001), "payload: 1001 bytes is over the job size limit of 1000"),
        (submit(job_type="a/b"), "job_type:"),
        (submit(worker_version="1.x"), "worker_version:"),
        (submit(max_attempts=101), "max_attempts:"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.SubmitJob(request)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (err.value.details() or "")
    assert (await stub.SubmitJob(submit(payload=b"x" * 1000))).job_id


async def test_max_attempts_request_over_version_config_over_default(
    stub: pb_grpc.ManagerServiceStub, node: pb_grpc.ManagerServiceStub
) -> None:
    configured = module()
    configured.worker_max_attempts = 5
    await node.RegisterEngine(registration(modules=[configured, module(version="1.1.0")]))

    async def attempts(**fields: object) -> int:
        job = await stub.SubmitJob(submit(**fields))
        return (await stub.GetJobStatus(pb.GetJobStatusRequest(job_id=job.job_id))).max_attempts

    assert await attempts(worker_version="1.0.0") == 5
    assert await attempts(worker_version="1.0.0", max_attempts=2) == 2
    assert await attempts(worker_version="1.1.0") == 3
    assert await attempts() == 5  # name-only: the highest configured among the versions
    assert await attempts(worker_name="other") == 3


async def test_node_may_submit_and_read_but_not_list(
    stub: pb_grpc.ManagerServiceStub, node_stub: NodeStubs
) -> None:
    node = node_stub("node-a")
    job = await node.SubmitJob(submit(submitted_by="shop.cart"))
    status = await node.GetJobStatus(pb.GetJobStatusRequest(job_id=job.job_id))
    assert status.submitted_by == "shop.cart"
    for call in (node.ListJobs(pb.ListJobsRequest()), node.UpsertSchedule(schedule("s"))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_retry_backoff_then_dead(
    manager: ManagerServer, stub: pb_grpc.ManagerServiceStub, clock: FakeClock
) -> None:
    state = state_of(manager)
    job = await stub.SubmitJob(submit(max_attempts=2))
    [claim], _ = await state.claim_jobs(10, "me", GRACE)
    assert (claim.attempt, claim.timeout_secs) == (1, 20)
    assert (await state.claim_jobs(10, "me", GRACE))[0] == []  # running, lease not expired
    assert await state.fail_job(job.job_id, claim.claim_id, "boom 1", no_backoff) == "pending"
    status = await stub.GetJobStatus(pb.GetJobStatusRequest(job_id=job.job_id))
    assert status.status == pb.JOB_STATE_PENDING and status.error_message == "boom 1"
    assert status.run_at.ToNanoseconds() == int((clock.now + 10) * 1e9)
    clock.advance(9.9)
    assert (await state.claim_jobs(10, "me", GRACE))[0] == []  # backing off
    clock.advance(0.1)
    [claim], _ = await state.claim_jobs(10, "me", GRACE)
    assert claim.attempt == 2
    assert await state.fail_job(job.job_id, claim.claim_id, "boom 2", no_backoff) == "dead"
    status = await stub.GetJobStatus(pb.GetJobStatusRequest(job_id=job.job_id))
    assert (status.status, status.attempt, status.error_message) == (pb.JOB_STATE_DEAD, 2, "boom 2")
    assert (await state.job_depth())["dead"] == 1


async def test_fence_drops_a_stale_holder_and_last_lease_expiry_is_dead(
    manager: ManagerServer, stub: pb_grpc.ManagerServiceStub, clock: FakeClock
) -> None:
    state = state_of(manager)
    job = await stub.SubmitJob(submit(max_attempts=2, timeout_secs=3))
    [old], _ = await state.claim_jobs(10, "a", GRACE)
    clock.advance(3 + GRACE)  # the lease ends: another claim takes over
    [new], died = await state.claim_jobs(10, "b", GRACE)
    assert (new.job_id, new.attempt, died) == (job.job_id, 2, [])
    assert not await state.complete_job(job.job_id, old.claim_id, b"late")
    assert await state.fail_job(job.job_id, old.claim_id, "late", no_backoff) is None
    assert await state.complete_job(job.job_id, new.claim_id, b"result")
    status = await stub.GetJobStatus(pb.GetJobStatusRequest(job_id=job.job_id))
    assert (status.status, status.result) == (pb.JOB_STATE_COMPLETE, b"result")
    assert "lease expired" in status.error_message  # attempt 1's fate stays visible

    lost = await stub.SubmitJob(submit(max_attempts=1, timeout_secs=3))
    [claim], _ = await state.claim_jobs(10, "a", GRACE)
    clock.advance(3 + GRACE)
    claims, died = await state.claim_jobs(10, "b", GRACE)
    assert (claims, [d[0] for d in died]) == ([], [lost.job_id])
    status = await stub.GetJobStatus(pb.GetJobStatusRequest(job_id=lost.job_id))
    assert status.status == pb.JOB_STATE_DEAD and "lease expired" in status.error_message
    assert not await state.complete_job(lost.job_id, claim.claim_id, b"too late")


async def test_submits_grouped_in_one_commit_keep_their_order_and_keys(
    manager: ManagerServer, stub: pb_grpc.ManagerServiceStub
) -> None:
    # Concurrent submits share one transaction (group commit); within it a later submit with
    # an earlier one's key gets that job, as if they had come one by one.
    keyed = [stub.SubmitJob(submit(idempotency_key="same", payload=b"%d" % i)) for i in range(4)]
    plain = [stub.SubmitJob(submit()) for _ in range(3)]
    answers = await asyncio.gather(*keyed, *plain)
    kept = {a.job_id for a in answers[:4]}
    assert len(kept) == 1 and sorted(a.existing for a in answers[:4]) == [False, True, True, True]
    assert len({a.job_id for a in answers[4:]} | kept) == 4
    assert not any(a.existing for a in answers[4:])


async def test_one_round_finalizes_each_outcome_behind_its_own_fence(
    manager: ManagerServer, stub: pb_grpc.ManagerServiceStub, clock: FakeClock
) -> None:
    state = state_of(manager)
    ids = [(await stub.SubmitJob(submit(max_attempts=3, timeout_secs=3))).job_id for _ in range(4)]
    claims = {c.job_id: c for c in (await state.claim_jobs(10, "a", GRACE))[0]}
    clock.advance(3 + GRACE)  # every lease ends; the last job is taken over by "b"
    [taken], _ = await state.claim_jobs(1, "b", GRACE)
    late = claims[taken.job_id]
    rest = [claims[i] for i in ids if i != taken.job_id]
    outcomes = [
        Outcome(rest[0].job_id, rest[0].claim_id, b"one"),
        Outcome(late.job_id, late.claim_id, b"stale"),
        Outcome(rest[1].job_id, rest[1].claim_id, None, "boom"),
        Outcome(rest[2].job_id, rest[2].claim_id, b""),
        Outcome(taken.job_id, taken.claim_id, b"two"),
    ]
    cycle = await state.job_cycle(outcomes, no_backoff, False, 0, "a", GRACE)
    assert cycle.finalized == ["complete", None, "pending", "complete", "complete"]
    results = {i: await stub.GetJobStatus(pb.GetJobStatusRequest(job_id=i)) for i in ids}
    assert results[rest[0].job_id].result == b"one"
    assert results[taken.job_id].result == b"two"  # the stale holder's b"stale" was dropped
    assert results[rest[1].job_id].error_message == "boom"


async def test_a_round_commits_without_its_own_fsync_and_submits_keep_theirs(
    manager: ManagerServer,
) -> None:
    # The dispatcher's rounds are not durable (their loss means a retry); everything else,
    # submits included, still is: the setting must not leak out of a round, even a failed one.
    backend = state_of(manager).backend
    if backend.kind == "sqlite":
        ask, durable_value, round_value = "PRAGMA synchronous", "2", "1"  # FULL, NORMAL
    else:  # the test server runs with synchronous_commit off: the source tells a SET LOCAL
        ask = "SELECT setting || ' ' || source FROM pg_settings WHERE name = 'synchronous_commit'"
        durable_value, round_value = "off command line", "off session"

    async def setting(tx: Tx) -> str:
        row = await tx.fetchrow(ask)
        assert row is not None
        return str(row[0])

    async def fails(tx: Tx) -> None:
        raise RuntimeError("boom")

    assert await backend.run(setting) == durable_value
    assert await backend.run(setting, durable=False) == round_value
    assert await backend.run(setting) == durable_value
    with pytest.raises(RuntimeError):
        await backend.run(fails, durable=False)
    assert await backend.run(setting) == durable_value


def schedule(name: str, **fields: object) -> pb.UpsertScheduleRequest:
    base: dict[str, object] = {
        "name": name,
        "worker_namespace": "example",
        "worker_name": "echo",
        "worker_version": "1.0.0",
        "job_type": "tick",
        "interval_secs": 60,
        "payload": b'{"n": 1}',
    }
    return pb.UpsertScheduleRequest(**{**base, **fields})


async def test_schedules_fire_first_at_once_then_every_interval(
    manager: ManagerServer, stub: pb_grpc.ManagerServiceStub, clock: FakeClock
) -> None:
    state = state_of(manager)
    assert (await stub.UpsertSchedule(schedule("every-minute"))).changed
    assert not (await stub.UpsertSchedule(schedule("every-minute"))).changed
    nightly = schedule("nightly", interval_secs=0, cron="0 3 * * *")
    assert (await stub.UpsertSchedule(nightly)).changed
    start = clock.now
    fired = await state.fire_schedules()
    assert [f.schedule for f in fired] == ["every-minute"]  # cron waits for 03:00
    assert await state.fire_schedules() == []
    clock.advance(60)
    [again] = await state.fire_schedules()
    listed = {s.name: s for s in (await stub.ListSchedules(pb.ListSchedulesRequest())).schedules}
    minute = listed["every-minute"]
    assert minute.last_fired_at.ToNanoseconds() == int((start + 60) * 1e9)
    assert minute.next_fire_at.ToNanoseconds() == int((start + 120) * 1e9)
    assert listed["nightly"].next_fire_at.ToSeconds() % 86400 == 3 * 3600
    job = await stub.GetJobStatus(pb.GetJobStatusRequest(job_id=again.job_id))
    assert (job.schedule, job.worker_version, job.job_type) == ("every-minute", "1.0.0", "tick")
    clock.advance(3600)  # missed times are skipped, not fired in a burst
    assert len(await state.fire_schedules()) == 1

    await stub.DeleteSchedule(pb.DeleteScheduleRequest(name="nightly"))
    names = [s.name for s in (await stub.ListSchedules(pb.ListSchedulesRequest())).schedules]
    assert names == ["every-minute"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.DeleteSchedule(pb.DeleteScheduleRequest(name="nightly"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_dead_scheduled_job_counts_against_its_schedule(
    manager: ManagerServer, stub: pb_grpc.ManagerServiceStub
) -> None:
    state = state_of(manager)
    await stub.UpsertSchedule(schedule("fragile", max_attempts=1))
    [fired] = await state.fire_schedules()
    [claim], _ = await state.claim_jobs(1, "me", GRACE)
    assert await state.fail_job(fired.job_id, claim.claim_id, "no luck", no_backoff) == "dead"
    [listed] = (await stub.ListSchedules(pb.ListSchedulesRequest())).schedules
    assert (listed.consecutive_failures, listed.last_error) == (1, "no luck")


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"interval_secs": 0}, "exactly one of them"),
        ({"cron": "* * * * *"}, "exactly one of them"),
        ({"interval_secs": 0, "cron": "61 * * * *"}, "not a valid cron"),
        ({"name": "Bad Name"}, "name:"),
    ],
)
async def test_schedule_validation(
    stub: pb_grpc.ManagerServiceStub, fields: dict[str, object], problem: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.UpsertSchedule(schedule(**{"name": "s", **fields}))  # type: ignore[arg-type]
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert problem in (err.value.details() or "")


async def test_manager_config_default_proxy(manager_config: ManagerConfig) -> None:
    assert manager_config.local_proxy_address == "http://127.0.0.1:9001"
    with pytest.raises(ValueError, match="node proxy's URL"):
        ManagerConfig.model_validate(
            {**manager_config.model_dump(), "local_proxy_address": "https://x:1/p"}
        )

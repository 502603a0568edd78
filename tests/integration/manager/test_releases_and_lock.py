"""wrctl's RPCs over real gRPC: the apply lock lease, release records and cluster state."""

from __future__ import annotations

import grpc
import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.version import __version__
from tests.integration.manager.builders import digest, module, placement, registration, release
from tests.integration.manager.conftest import FakeClock, NodeStubs

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _acquire(
    stub: pb_grpc.ManagerServiceStub, holder: str, ttl: int = 60
) -> pb.AcquireApplyLockResponse:
    return await stub.AcquireApplyLock(
        pb.AcquireApplyLockRequest(holder=holder, reason="apply", ttl_secs=ttl)
    )


async def _state(stub: pb_grpc.ManagerServiceStub) -> pb.GetClusterStateResponse:
    return await stub.GetClusterState(pb.GetClusterStateRequest())


async def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value.code()


async def test_lock_contention_and_lease_expiry(
    stub: pb_grpc.ManagerServiceStub, clock: FakeClock
) -> None:
    first = await _acquire(stub, "alice@host pid 1", ttl=30)
    assert first.acquired and first.lock.holder == "alice@host pid 1"
    assert first.lock.expires_at.seconds - first.lock.acquired_at.seconds == 30

    second = await _acquire(stub, "bob@host pid 2")
    assert not second.acquired
    assert second.lock.lock_id == first.lock.lock_id
    assert second.lock.holder == "alice@host pid 1"
    assert (await _state(stub)).lock.lock_id == first.lock.lock_id

    clock.advance(20)
    renewed = await stub.RenewApplyLock(
        pb.RenewApplyLockRequest(lock_id=first.lock.lock_id, ttl_secs=30)
    )
    assert renewed.lock.expires_at.seconds == int(clock.now) + 30
    clock.advance(20)
    assert not (await _acquire(stub, "bob@host pid 2")).acquired

    clock.advance(11)  # past the renewed lease: anyone may take it
    assert not (await _state(stub)).HasField("lock")
    third = await _acquire(stub, "bob@host pid 2")
    assert third.acquired and third.lock.lock_id != first.lock.lock_id
    code = await _code(stub.RenewApplyLock(pb.RenewApplyLockRequest(lock_id=first.lock.lock_id)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION

    await stub.ReleaseApplyLock(pb.ReleaseApplyLockRequest(lock_id=third.lock.lock_id))
    assert not (await _state(stub)).HasField("lock")
    assert (await _acquire(stub, "carol")).acquired


async def test_force_unlock_by_id(stub: pb_grpc.ManagerServiceStub) -> None:
    held = await _acquire(stub, "alice")
    wrong = await _code(stub.ForceUnlock(pb.ForceUnlockRequest(lock_id="not-it")))
    assert wrong == grpc.StatusCode.NOT_FOUND
    await stub.ForceUnlock(pb.ForceUnlockRequest(lock_id=held.lock.lock_id))
    assert (await _acquire(stub, "bob")).acquired


async def test_record_release_requires_the_held_lock(
    stub: pb_grpc.ManagerServiceStub, clock: FakeClock
) -> None:
    request = pb.RecordReleaseRequest(release=release(), lock_id="")
    assert await _code(stub.RecordRelease(request)) == grpc.StatusCode.FAILED_PRECONDITION
    held = await _acquire(stub, "alice", ttl=10)
    request.lock_id = "someone-else"
    assert await _code(stub.RecordRelease(request)) == grpc.StatusCode.FAILED_PRECONDITION
    assert (await _state(stub)).serial == 0

    request.lock_id = held.lock.lock_id
    assert (await stub.RecordRelease(request)).serial == 1
    clock.advance(11)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RecordRelease(request)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "expired" in (err.value.details() or "")
    assert (await _state(stub)).serial == 1


async def test_cluster_state_has_releases_live_engines_and_serial(
    stub: pb_grpc.ManagerServiceStub, node_stub: NodeStubs, clock: FakeClock
) -> None:
    lock = (await _acquire(stub, "alice")).lock.lock_id
    manager_release = release("manager", "mgr-bundle")
    serial = (
        await stub.RecordRelease(pb.RecordReleaseRequest(release=manager_release, lock_id=lock))
    ).serial
    node_a = release("node-a", "bundle-a")
    node_a.status = "rolled-back"
    node_a.message = "wrctl rollback"
    serial2 = (
        await stub.RecordRelease(pb.RecordReleaseRequest(release=node_a, lock_id=lock))
    ).serial
    assert serial2 == serial + 1
    # node-b's first rollout is in flight: pending, which is not history and moves no serial.
    node_b = placement("node-b", ["example.echo@1.0.0"], (), status="pending", bundle="bundle-b")
    pending_serial = (
        await stub.RecordRelease(pb.RecordReleaseRequest(release=node_b, lock_id=lock))
    ).serial
    assert pending_serial == serial2
    await node_stub("node-a").RegisterEngine(registration("engine-a", node="node-a"))
    await node_stub("node-b").RegisterEngine(registration("engine-b", node="node-b", port=9101))
    # An engine that names no node is filed under the node whose certificate registered it.
    await node_stub("node-a").RegisterEngine(registration("by-hand", node="", port=9102))
    await node_stub("node-b").Heartbeat(
        pb.HeartbeatRequest(engine_id="engine-b", healthy_modules=[module()])
    )
    rule = pb.RoutingRule(
        rule_id="behind-our-back",
        destination_namespace="example",
        destination_module="echo",
        destination_version="1.0.0",
        engine_address="http://127.0.0.1:9999",
        peer_address="https://127.0.0.1:9443",
    )
    await stub.UpsertRoutingRule(rule)
    serial2 += 1  # the explicit rule moved it

    state = await _state(stub)
    assert state.serial == serial2  # registrations and heartbeats are live state, not serial
    assert state.manager_version == __version__
    assert state.manager_release.bundle_digest == digest("mgr-bundle")
    assert state.manager_release.applied_at.seconds == int(clock.now)
    assert state.manager_release.status == "applied"
    assert state.lock.lock_id == lock
    assert [n.name for n in state.nodes] == ["node-a", "node-b"]
    a, b = state.nodes
    assert a.release.bundle_digest == digest("bundle-a")
    assert (a.release.status, a.release.message) == ("rolled-back", "wrctl rollback")
    assert a.release.module_digests == node_a.module_digests
    assert a.release.attributes["format"] == "supervisor"
    assert not a.HasField("pending")
    assert [e.registration.engine_id for e in a.engines] == ["by-hand", "engine-a"]
    assert a.engines[0].registration.node == "node-a"
    assert not b.HasField("release")
    assert (b.pending.status, b.pending.bundle_digest) == ("pending", digest("bundle-b"))
    (engine_b,) = b.engines
    assert engine_b.healthy and engine_b.modules[0].healthy
    assert engine_b.modules[0].module.digest == digest("example.echo@1.0.0")
    assert [r.rule_id for r in state.explicit_rules] == ["behind-our-back"]
    assert state.explicit_rules[0].engine_address == "http://127.0.0.1:9999"

    deleted = await stub.DeleteRelease(pb.DeleteReleaseRequest(target="node-a", lock_id=lock))
    assert deleted.serial == serial2 + 1
    state = await _state(stub)
    assert not state.nodes[0].HasField("release")
    missing = stub.DeleteRelease(pb.DeleteReleaseRequest(target="node-a", lock_id=lock))
    assert await _code(missing) == grpc.StatusCode.NOT_FOUND


async def test_failed_attempts_only_land_in_the_history(
    stub: pb_grpc.ManagerServiceStub, clock: FakeClock
) -> None:
    lock = (await _acquire(stub, "alice")).lock.lock_id

    async def record(target: str, bundle: str, status: str, message: str = "") -> int:
        rec = release(target, bundle)
        rec.status, rec.message = status, message
        reply = await stub.RecordRelease(pb.RecordReleaseRequest(release=rec, lock_id=lock))
        clock.advance(1)
        return int(reply.serial)

    first = await record("node-a", "v1", "applied")
    await record("node-b", "b1", "applied")
    failed = await record("node-a", "v2", "failed", "health gate: engine never healthy")
    assert failed == first + 1  # node-b moved it; the failure did not
    state = await _state(stub)
    assert state.serial == failed
    assert state.nodes[0].release.bundle_digest == digest("v1")  # still what runs

    history = (await stub.ListReleases(pb.ListReleasesRequest(target="node-a"))).releases
    assert [(r.bundle_digest, r.status) for r in history] == [
        (digest("v2"), "failed"),
        (digest("v1"), "applied"),
    ]
    assert history[0].message == "health gate: engine never healthy"
    assert history[0].applied_at.seconds > history[1].applied_at.seconds
    everything = (await stub.ListReleases(pb.ListReleasesRequest(limit=2))).releases
    assert [r.target for r in everything] == ["node-a", "node-b"]
    too_many = stub.ListReleases(pb.ListReleasesRequest(limit=5000))
    assert await _code(too_many) == grpc.StatusCode.INVALID_ARGUMENT
    bad = stub.ListReleases(pb.ListReleasesRequest(target="Node A"))
    assert await _code(bad) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("target", "Node A", "release.target"),
        ("bundle_digest", "abc", "release.bundle_digest"),
        ("runtime_version", "", "release.runtime_version"),
        ("status", "done", "release.status"),
    ],
)
async def test_bad_release_is_invalid_argument(
    stub: pb_grpc.ManagerServiceStub, field: str, value: str, named: str
) -> None:
    lock = (await _acquire(stub, "alice")).lock.lock_id
    record = release()
    setattr(record, field, value)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RecordRelease(pb.RecordReleaseRequest(release=record, lock_id=lock))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith(f"{named}:")
    assert (await _state(stub)).serial == 0


async def test_bad_module_digest_key_is_invalid_argument(stub: pb_grpc.ManagerServiceStub) -> None:
    lock = (await _acquire(stub, "alice")).lock.lock_id
    record = release()
    record.module_digests["echo"] = digest("x")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.RecordRelease(pb.RecordReleaseRequest(release=record, lock_id=lock))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "release.module_digests['echo']" in (err.value.details() or "")


async def test_lock_requests_are_validated(stub: pb_grpc.ManagerServiceStub) -> None:
    no_holder = stub.AcquireApplyLock(pb.AcquireApplyLockRequest(holder=""))
    assert await _code(no_holder) == grpc.StatusCode.INVALID_ARGUMENT
    too_long = stub.AcquireApplyLock(pb.AcquireApplyLockRequest(holder="a", ttl_secs=10**6))
    assert await _code(too_long) == grpc.StatusCode.INVALID_ARGUMENT
    default_ttl = await _acquire(stub, "alice", ttl=0)
    assert default_ttl.lock.expires_at.seconds - default_ttl.lock.acquired_at.seconds == 60

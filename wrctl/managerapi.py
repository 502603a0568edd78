"""wrctl's client for the manager: cluster state, releases and the apply lock (a lease that a
background thread renews while an apply runs)."""

from __future__ import annotations

import getpass
import os
import socket
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

import grpc

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.manager_failover import AWAY, may_resend
from wrctl.credentials import OperatorCredentials, manager_channel, refusal
from wrctl.errors import LockHeldError, ManagerUnreachable, WrctlError


def holder_name() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"


class ManagerClient:
    """The operator's channels to the managers at `address` (one host:port, or several
    managers sharing one PostgreSQL; mutual TLS, see credentials). Calls go to one manager and
    move on to the next when it does not answer (see runtime.manager_failover)."""

    def __init__(
        self,
        address: str | Sequence[str],
        credentials: OperatorCredentials,
        timeout: float = 10.0,
    ) -> None:
        self.addresses = [address] if isinstance(address, str) else list(address)
        if not self.addresses:
            raise WrctlError("no manager address to dial")
        self.credentials = credentials
        self._timeout = timeout
        self._channels = [manager_channel(a, credentials) for a in self.addresses]
        self._stubs = [pb_grpc.ManagerServiceStub(c) for c in self._channels]
        self._current = 0

    @property
    def address(self) -> str:
        """The manager calls go to now."""
        return self.addresses[self._current]

    def close(self) -> None:
        for channel in self._channels:
            channel.close()

    def _call(self, method: str, request: object) -> object:
        count = len(self.addresses)
        first = self._current
        away: list[str] = []
        handshake_refused: Exception | None = None
        for attempt in range(count):
            index = (first + attempt) % count
            try:
                return getattr(self._stubs[index], method)(request, timeout=self._timeout)
            except grpc.RpcError as exc:
                address = self.addresses[index]
                refused = refusal(exc, address, self.credentials, method)
                code = exc.code() if isinstance(exc, grpc.Call) else None
                if refused is not None:
                    # A refused handshake may be one manager's (a stale certificate, one going
                    # down): try the others before saying so. A refusal after the handshake
                    # (PERMISSION_DENIED, UNAUTHENTICATED) is every manager's answer.
                    if code is not grpc.StatusCode.UNAVAILABLE:
                        raise refused from None
                    handshake_refused = handshake_refused or refused
                details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
                if code not in AWAY:
                    raise WrctlError(f"manager {method}: {details}") from None
                away.append(f"manager at {address}: {details}")
                if self._current == index:  # the renewal thread may have moved on already
                    self._current = (index + 1) % count
                if not may_resend(method, exc):
                    break
        if handshake_refused is not None:
            raise handshake_refused from None
        raise ManagerUnreachable("; ".join(away)) from None

    def state(self) -> pb.GetClusterStateResponse:
        response = self._call("GetClusterState", pb.GetClusterStateRequest())
        assert isinstance(response, pb.GetClusterStateResponse)
        return response

    def routing_version(self) -> int:
        response = self._call("GetRoutingTable", pb.GetRoutingTableRequest(known_version=0))
        assert isinstance(response, pb.GetRoutingTableResponse)
        return int(response.table.version)

    def managers(self) -> list[pb.ManagerInfo]:
        """The live managers (their heartbeat rows)."""
        response = self._call("ListManagers", pb.ListManagersRequest())
        assert isinstance(response, pb.ListManagersResponse)
        return list(response.managers)

    def wait_ready(self, deadline_s: float) -> None:
        """Wait until the (current) manager answers (right after it was started)."""
        try:
            grpc.channel_ready_future(self._channels[self._current]).result(timeout=deadline_s)
        except grpc.FutureTimeoutError:
            try:  # one call says why: a TLS refusal is not "still starting"
                self._call("GetClusterState", pb.GetClusterStateRequest())
            except ManagerUnreachable as exc:
                raise ManagerUnreachable(
                    f"manager at {self.address} did not come up within {deadline_s:.0f}s: {exc}"
                ) from None

    def record(self, release: pb.ReleaseRecord, lock_id: str) -> int:
        response = self._call(
            "RecordRelease", pb.RecordReleaseRequest(release=release, lock_id=lock_id)
        )
        assert isinstance(response, pb.RecordReleaseResponse)
        return int(response.serial)

    def history(self, target: str = "", limit: int = 50) -> list[pb.ReleaseRecord]:
        """Release records, newest first (failed attempts included)."""
        response = self._call("ListReleases", pb.ListReleasesRequest(target=target, limit=limit))
        assert isinstance(response, pb.ListReleasesResponse)
        return list(response.releases)

    def delete_release(self, target: str, lock_id: str) -> None:
        self._call("DeleteRelease", pb.DeleteReleaseRequest(target=target, lock_id=lock_id))

    def delete_rule(self, rule_id: str) -> None:
        """Delete an explicit routing rule (drift: wrctl apply writes none)."""
        self._call("DeleteRoutingRule", pb.DeleteRoutingRuleRequest(rule_id=rule_id))

    def deregister_engine(self, engine_id: str) -> None:
        """Deregister an engine (drift: it serves a module its node's release does not place
        there); the operator role may deregister any engine."""
        self._call("DeregisterEngine", pb.DeregisterEngineRequest(engine_id=engine_id))

    def secrets(self, namespace: str = "") -> list[pb.SecretEntry]:
        """Secret names, versions and update times (never values); "" = every namespace."""
        response = self._call("ListSecrets", pb.ListSecretsRequest(namespace=namespace))
        assert isinstance(response, pb.ListSecretsResponse)
        return list(response.secrets)

    def set_secret(self, namespace: str, key: str, value: str) -> None:
        self._call("SetSecret", pb.SetSecretRequest(namespace=namespace, key=key, value=value))

    def delete_secret(self, namespace: str, key: str) -> None:
        self._call("DeleteSecret", pb.DeleteSecretRequest(namespace=namespace, key=key))

    def submit_job(self, request: pb.SubmitJobRequest) -> pb.SubmitJobResponse:
        response = self._call("SubmitJob", request)
        assert isinstance(response, pb.SubmitJobResponse)
        return response

    def job_status(self, job_id: str) -> pb.GetJobStatusResponse:
        response = self._call("GetJobStatus", pb.GetJobStatusRequest(job_id=job_id))
        assert isinstance(response, pb.GetJobStatusResponse)
        return response

    def jobs(self, request: pb.ListJobsRequest) -> list[pb.GetJobStatusResponse]:
        response = self._call("ListJobs", request)
        assert isinstance(response, pb.ListJobsResponse)
        return list(response.jobs)

    def schedules(self, namespace: str = "") -> list[pb.Schedule]:
        response = self._call("ListSchedules", pb.ListSchedulesRequest(worker_namespace=namespace))
        assert isinstance(response, pb.ListSchedulesResponse)
        return list(response.schedules)

    def upsert_schedule(self, request: pb.UpsertScheduleRequest) -> bool:
        response = self._call("UpsertSchedule", request)
        assert isinstance(response, pb.UpsertScheduleResponse)
        return bool(response.changed)

    def delete_schedule(self, name: str) -> None:
        self._call("DeleteSchedule", pb.DeleteScheduleRequest(name=name))

    def force_unlock(self, lock_id: str) -> None:
        self._call("ForceUnlock", pb.ForceUnlockRequest(lock_id=lock_id))

    @contextmanager
    def apply_lock(self, reason: str, ttl_s: int = 60) -> Iterator[pb.ApplyLock]:
        """Hold the apply lock for the block; LockHeldError when someone else has it."""
        response = self._call(
            "AcquireApplyLock",
            pb.AcquireApplyLockRequest(holder=holder_name(), reason=reason, ttl_secs=ttl_s),
        )
        assert isinstance(response, pb.AcquireApplyLockResponse)
        lock = response.lock
        if not response.acquired:
            raise LockHeldError(
                f"the apply lock is held by {lock.holder} ({lock.reason}) since "
                f"{lock.acquired_at.ToDatetime():%Y-%m-%d %H:%M:%S} UTC, lease until "
                f"{lock.expires_at.ToDatetime():%H:%M:%S} UTC; lock id {lock.lock_id}. "
                "Wait for it, or `wrctl force-unlock LOCK_ID` if that apply is dead."
            )
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(lock.lock_id, ttl_s, stop), daemon=True
        )
        renewer.start()
        try:
            yield lock
        finally:
            stop.set()
            renewer.join()
            with suppress(WrctlError):  # on failure the lease expires by itself
                self._call("ReleaseApplyLock", pb.ReleaseApplyLockRequest(lock_id=lock.lock_id))

    def _renew(self, lock_id: str, ttl_s: int, stop: threading.Event) -> None:
        while not stop.wait(ttl_s / 3):
            try:
                self._call(
                    "RenewApplyLock", pb.RenewApplyLockRequest(lock_id=lock_id, ttl_secs=ttl_s)
                )
            except WrctlError:
                continue  # retried at the next tick; the lease outlives one missed renewal

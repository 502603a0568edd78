"""ManagerService over grpc.aio: validate, run one state operation, answer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import grpc

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import MANAGER, NODE, OPERATOR, caller_hosts
from runtime.manager import validation as check
from runtime.manager.config import JobsConfig
from runtime.manager.errors import InvalidArgument
from runtime.manager.metrics import ManagerMetrics
from runtime.manager.rpc_errors import current_caller, rpc
from runtime.manager.state import jobs
from runtime.manager.state.manager_state import ManagerState
from runtime.wire import module_key

log = logging.getLogger("runtime.manager")
DEFAULT_HISTORY = 50
MAX_HISTORY = 1000
DEFAULT_JOB_LIST = 100
Ctx = grpc.aio.ServicerContext[Any, Any]


class ManagerService(pb_grpc.ManagerServiceServicer):  # type: ignore[misc]
    """The manager's gRPC API (discovery RPCs come in a later issue).

    Each RPC names the roles that may call it (`rpc`); engine RPCs are further limited to what
    the calling node's release places on it (state.authority)."""

    def __init__(
        self,
        state: ManagerState,
        metrics: ManagerMetrics,
        cluster: str = "",
        jobs_config: JobsConfig | None = None,
        on_submit: Callable[[], None] | None = None,
        manager_expiry_secs: float = 60.0,
    ) -> None:
        self.state = state
        self.metrics = metrics
        # The cluster it serves, told to wrctl with the cluster state; when named, callers must
        # carry an identity of this cluster.
        self.cluster = cluster
        self.jobs_config = jobs_config or JobsConfig()
        self._on_submit = on_submit  # wakes this manager's dispatcher: no poll delay
        self._manager_expiry = manager_expiry_secs

    # ── engines ──────────────────────────────────────────────────────────

    @rpc(NODE)
    async def RegisterEngine(
        self, request: pb.RegisterEngineRequest, context: Ctx
    ) -> pb.RegisterEngineResponse:
        check.registration(request.registration)
        reg, version, secrets = await self.state.register_engine(
            request.registration, current_caller(), caller_hosts(context)
        )
        if reg.db_namespaces:
            # Per-namespace DB roles belong to the db capability (a later issue).
            log.warning(
                "db credentials requested but not issued by this manager",
                extra={"engine_id": reg.engine_id, "db_namespaces": list(reg.db_namespaces)},
            )
        log.info(
            "engine registered",
            extra={
                "engine_id": reg.engine_id,
                "node": reg.node,
                "address": reg.address,
                "modules": [module_key(m.namespace, m.name, m.version) for m in reg.modules],
                "routing_version": version,
            },
        )
        return pb.RegisterEngineResponse(accepted=True, secrets=secrets)

    @rpc(NODE, OPERATOR)
    async def DeregisterEngine(
        self, request: pb.DeregisterEngineRequest, context: Ctx
    ) -> pb.DeregisterEngineResponse:
        check.non_empty(request.engine_id, "engine_id")
        who = current_caller()
        await self.state.deregister_engine(request.engine_id, who if who.role == NODE else None)
        log.info("engine deregistered", extra={"engine_id": request.engine_id})
        return pb.DeregisterEngineResponse()

    @rpc(NODE)
    async def Heartbeat(self, request: pb.HeartbeatRequest, context: Ctx) -> pb.HeartbeatResponse:
        check.non_empty(request.engine_id, "engine_id")
        healthy = []
        for i, module in enumerate(request.healthy_modules):
            try:
                check.module(module, f"healthy_modules[{i}]")
            except InvalidArgument as exc:
                # A bad entry must not cost the engine its liveness: skip it, say so.
                log.warning(
                    "heartbeat entry skipped",
                    extra={"engine_id": request.engine_id, "why": str(exc)},
                )
                continue
            healthy.append(module)
        flips = await self.state.heartbeat(request.engine_id, healthy, current_caller())
        self._report_flips(flips)
        return pb.HeartbeatResponse()

    @rpc(OPERATOR, MANAGER)
    async def ListEngines(
        self, request: pb.ListEnginesRequest, context: Ctx
    ) -> pb.ListEnginesResponse:
        return pb.ListEnginesResponse(engines=await self.state.list_engines())

    def _report_flips(self, flips: list[tuple[str, bool]]) -> None:
        self.metrics.count_flips(flips)
        for rule_id, healthy in flips:
            log.info("route health changed", extra={"rule_id": rule_id, "healthy": healthy})

    # ── routing ──────────────────────────────────────────────────────────

    @rpc(NODE, OPERATOR, MANAGER)
    async def GetRoutingTable(
        self, request: pb.GetRoutingTableRequest, context: Ctx
    ) -> pb.GetRoutingTableResponse:
        table = await self.state.routing_table(request.known_version)
        return (
            pb.GetRoutingTableResponse()
            if table is None
            else pb.GetRoutingTableResponse(table=table)
        )

    @rpc(OPERATOR)
    async def UpsertRoutingRule(
        self, request: pb.RoutingRule, context: Ctx
    ) -> pb.UpsertRoutingRuleResponse:
        check.routing_rule(request)
        version = await self.state.upsert_rule(request)
        log.info("routing rule set", extra={"rule_id": request.rule_id, "routing_version": version})
        return pb.UpsertRoutingRuleResponse()

    @rpc(OPERATOR)
    async def DeleteRoutingRule(
        self, request: pb.DeleteRoutingRuleRequest, context: Ctx
    ) -> pb.DeleteRoutingRuleResponse:
        check.non_empty(request.rule_id, "rule_id")
        version = await self.state.delete_rule(request.rule_id)
        log.info(
            "routing rule deleted", extra={"rule_id": request.rule_id, "routing_version": version}
        )
        return pb.DeleteRoutingRuleResponse()

    # ── schemas and secrets ──────────────────────────────────────────────

    @rpc(NODE, OPERATOR, MANAGER)
    async def GetSchema(self, request: pb.GetSchemaRequest, context: Ctx) -> pb.GetSchemaResponse:
        check.name(request.namespace, "namespace")
        check.name(request.module, "module")
        if request.version:
            check.version(request.version, "version")
        schema = await self.state.schema(request.namespace, request.module, request.version)
        return pb.GetSchemaResponse(proto_schema=schema)

    @rpc(OPERATOR)
    async def SetSecret(self, request: pb.SetSecretRequest, context: Ctx) -> pb.SetSecretResponse:
        check.secret(request.namespace, request.key)
        check.secret_value(request.value)
        serial = await self.state.set_secret(request.namespace, request.key, request.value)
        log.info(
            "secret set", extra={"secret": f"{request.namespace}/{request.key}", "serial": serial}
        )
        return pb.SetSecretResponse()

    @rpc(OPERATOR)
    async def DeleteSecret(
        self, request: pb.DeleteSecretRequest, context: Ctx
    ) -> pb.DeleteSecretResponse:
        check.secret(request.namespace, request.key)
        serial = await self.state.delete_secret(request.namespace, request.key)
        log.info(
            "secret deleted",
            extra={"secret": f"{request.namespace}/{request.key}", "serial": serial},
        )
        return pb.DeleteSecretResponse()

    @rpc(OPERATOR)
    async def ListSecrets(
        self, request: pb.ListSecretsRequest, context: Ctx
    ) -> pb.ListSecretsResponse:
        if request.namespace:
            check.name(request.namespace, "namespace")
        return pb.ListSecretsResponse(secrets=await self.state.list_secrets(request.namespace))

    # ── wrctl: cluster state, releases, apply lock ──────────────────────

    @rpc(OPERATOR, MANAGER)
    async def GetClusterState(
        self, request: pb.GetClusterStateRequest, context: Ctx
    ) -> pb.GetClusterStateResponse:
        response = await self.state.cluster_state()
        response.cluster = self.cluster
        return response

    @rpc(OPERATOR)
    async def RecordRelease(
        self, request: pb.RecordReleaseRequest, context: Ctx
    ) -> pb.RecordReleaseResponse:
        if not request.HasField("release"):
            raise InvalidArgument("release: missing")
        check.release(request.release)
        serial = await self.state.record_release(request.release, request.lock_id)
        log.info(
            "release recorded",
            extra={
                "target": request.release.target,
                "bundle_digest": request.release.bundle_digest,
                "status": request.release.status or "applied",
                "serial": serial,
            },
        )
        return pb.RecordReleaseResponse(serial=serial)

    @rpc(OPERATOR, MANAGER)
    async def ListReleases(
        self, request: pb.ListReleasesRequest, context: Ctx
    ) -> pb.ListReleasesResponse:
        if request.target:
            check.target(request.target, "target")
        if request.limit > MAX_HISTORY:
            raise InvalidArgument(f"limit: {request.limit} is above the maximum {MAX_HISTORY}")
        records = await self.state.release_history(request.target, request.limit or DEFAULT_HISTORY)
        return pb.ListReleasesResponse(releases=records)

    @rpc(OPERATOR)
    async def DeleteRelease(
        self, request: pb.DeleteReleaseRequest, context: Ctx
    ) -> pb.DeleteReleaseResponse:
        check.target(request.target, "target")
        serial = await self.state.delete_release(request.target, request.lock_id)
        log.info("release deleted", extra={"target": request.target, "serial": serial})
        return pb.DeleteReleaseResponse(serial=serial)

    @rpc(OPERATOR)
    async def AcquireApplyLock(
        self, request: pb.AcquireApplyLockRequest, context: Ctx
    ) -> pb.AcquireApplyLockResponse:
        check.non_empty(request.holder, "holder")
        ttl = check.lock_ttl(request.ttl_secs)
        acquired, lock = await self.state.acquire_lock(request.holder, request.reason, ttl)
        log.info(
            "apply lock acquired" if acquired else "apply lock busy",
            extra={"lock_id": lock.lock_id, "holder": lock.holder, "requested_by": request.holder},
        )
        return pb.AcquireApplyLockResponse(acquired=acquired, lock=lock)

    @rpc(OPERATOR)
    async def RenewApplyLock(
        self, request: pb.RenewApplyLockRequest, context: Ctx
    ) -> pb.RenewApplyLockResponse:
        check.non_empty(request.lock_id, "lock_id")
        lock = await self.state.renew_lock(request.lock_id, check.lock_ttl(request.ttl_secs))
        return pb.RenewApplyLockResponse(lock=lock)

    @rpc(OPERATOR)
    async def ReleaseApplyLock(
        self, request: pb.ReleaseApplyLockRequest, context: Ctx
    ) -> pb.ReleaseApplyLockResponse:
        check.non_empty(request.lock_id, "lock_id")
        await self.state.release_lock(request.lock_id)
        log.info("apply lock released", extra={"lock_id": request.lock_id})
        return pb.ReleaseApplyLockResponse()

    @rpc(OPERATOR)
    async def ForceUnlock(
        self, request: pb.ForceUnlockRequest, context: Ctx
    ) -> pb.ForceUnlockResponse:
        check.non_empty(request.lock_id, "lock_id")
        await self.state.force_unlock(request.lock_id)
        log.warning("apply lock force-unlocked", extra={"lock_id": request.lock_id})
        return pb.ForceUnlockResponse()

    # ── jobs and schedules ──────────────────────────────────────────────
    # A node submits on behalf of the modules of its engines (the proxy's job gateway), for
    # any worker module: as for module-to-module calls, the source is attribution only, not
    # a permission (upstream's rule). Job ids are random UUIDs; a node may read any by id.

    @rpc(NODE, OPERATOR)
    async def SubmitJob(self, request: pb.SubmitJobRequest, context: Ctx) -> pb.SubmitJobResponse:
        check.submit_job(request, self.jobs_config.max_bytes)
        job = jobs.NewJob(
            namespace=request.worker_namespace,
            module=request.worker_name,
            version=request.worker_version,
            job_type=request.job_type,
            payload=bytes(request.payload),
            timeout_secs=request.timeout_secs or self.jobs_config.timeout_secs,
            max_attempts=request.max_attempts,
            idempotency_key=request.idempotency_key,
            traceparent=request.traceparent,
            submitted_by=request.submitted_by,
        )
        job_id, existing = await self.state.submit_job(job)
        if not existing and self._on_submit is not None:
            self._on_submit()
        # A new job at debug (one line per job would be the busiest line of a busy queue); a
        # repeated submit at info.
        log.log(
            logging.INFO if existing else logging.DEBUG,
            "job submit matched an earlier job" if existing else "job submitted",
            extra={
                "job_id": job_id,
                "worker": module_key(job.namespace, job.module, job.version or "*"),
                "job_type": job.job_type,
                "submitted_by": job.submitted_by or current_caller().uri,
            },
        )
        return pb.SubmitJobResponse(job_id=job_id, existing=existing)

    @rpc(NODE, OPERATOR)
    async def GetJobStatus(
        self, request: pb.GetJobStatusRequest, context: Ctx
    ) -> pb.GetJobStatusResponse:
        check.non_empty(request.job_id, "job_id")
        return await self.state.job_status(request.job_id)

    @rpc(OPERATOR, MANAGER)
    async def ListJobs(self, request: pb.ListJobsRequest, context: Ctx) -> pb.ListJobsResponse:
        if request.worker_namespace:
            check.name(request.worker_namespace, "worker_namespace")
        if request.worker_name:
            check.name(request.worker_name, "worker_name")
        if request.limit > check.MAX_JOB_LIST:
            raise InvalidArgument(
                f"limit: {request.limit} is above the maximum {check.MAX_JOB_LIST}"
            )
        state = jobs.FROM_PB.get(request.state, "")
        found = await self.state.list_jobs(
            request.worker_namespace,
            request.worker_name,
            state,
            request.limit or DEFAULT_JOB_LIST,
        )
        return pb.ListJobsResponse(jobs=found)

    @rpc(OPERATOR)
    async def UpsertSchedule(
        self, request: pb.UpsertScheduleRequest, context: Ctx
    ) -> pb.UpsertScheduleResponse:
        check.schedule(request, self.jobs_config.max_bytes)
        timeout = request.timeout_secs or self.jobs_config.timeout_secs
        changed = await self.state.upsert_schedule(request, timeout)
        if changed:
            log.info("schedule set", extra={"schedule": request.name})
            if self._on_submit is not None:
                self._on_submit()
        return pb.UpsertScheduleResponse(schedule_id=request.name, changed=changed)

    @rpc(OPERATOR)
    async def DeleteSchedule(
        self, request: pb.DeleteScheduleRequest, context: Ctx
    ) -> pb.DeleteScheduleResponse:
        check.name(request.name, "name")
        await self.state.delete_schedule(request.name)
        log.info("schedule deleted", extra={"schedule": request.name})
        return pb.DeleteScheduleResponse()

    @rpc(OPERATOR, MANAGER)
    async def ListSchedules(
        self, request: pb.ListSchedulesRequest, context: Ctx
    ) -> pb.ListSchedulesResponse:
        if request.worker_namespace:
            check.name(request.worker_namespace, "worker_namespace")
        return pb.ListSchedulesResponse(
            schedules=await self.state.list_schedules(request.worker_namespace)
        )

    # ── managers ─────────────────────────────────────────────────────────

    @rpc(NODE, OPERATOR, MANAGER)
    async def ListManagers(
        self, request: pb.ListManagersRequest, context: Ctx
    ) -> pb.ListManagersResponse:
        # Proxies and wrctl may discover the other managers; gossip_address stays empty
        # (liveness is the heartbeat rows alone).
        return pb.ListManagersResponse(
            managers=await self.state.live_managers(self._manager_expiry)
        )

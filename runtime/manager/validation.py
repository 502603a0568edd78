"""Request validation: every problem is an InvalidArgument whose message names the field."""

from __future__ import annotations

import re

from runtime.api import wruntime_pb2 as pb
from runtime.manager.errors import InvalidArgument
from runtime.manager.schedule_times import cron_problem
from runtime.names import NAME_RULE, InvalidName, check_name, check_version
from runtime.wire import job_type_problem, module_key, split_module_key

DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")
SECRET_KEY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@/-]{0,199}")
RELEASE_STATUSES = ("applied", "failed", "rolled-back", "pending")
MANAGER_TARGET = "manager"
MAX_SECRET_BYTES = 64 * 1024
MAX_LOCK_TTL_SECS = 24 * 3600


def name(value: str, field: str) -> str:
    try:
        return check_name(value, field)
    except InvalidName as exc:
        raise InvalidArgument(str(exc)) from None


def version(value: str, field: str) -> str:
    try:
        return check_version(value, field)
    except InvalidName as exc:
        raise InvalidArgument(str(exc)) from None


def non_empty(value: str, field: str) -> str:
    if not value.strip():
        raise InvalidArgument(f"{field}: must not be empty")
    return value


def identifier(value: str, field: str) -> str:
    if not ID_RE.fullmatch(value):
        raise InvalidArgument(
            f"{field}: {value!r} is not a valid id (1-200 characters of [A-Za-z0-9_.:@/-])"
        )
    return value


def secret_key(value: str, field: str) -> str:
    if not SECRET_KEY_RE.fullmatch(value):
        raise InvalidArgument(
            f"{field}: {value!r} is not a valid secret key (1-128 characters of [A-Za-z0-9_.-])"
        )
    return value


def digest(value: str, field: str, *, required: bool) -> str:
    if (required or value) and not DIGEST_RE.fullmatch(value):
        raise InvalidArgument(f"{field}: {value!r} is not a digest (expected sha256:<64 hex>)")
    return value


def module(desc: pb.ModuleDescriptor, field: str) -> None:
    name(desc.namespace, f"{field}.namespace")
    name(desc.name, f"{field}.name")
    version(desc.version, f"{field}.version")
    digest(desc.digest, f"{field}.digest", required=False)


def registration(reg: pb.EngineRegistration) -> None:
    field = "registration"
    identifier(reg.engine_id, f"{field}.engine_id")
    non_empty(reg.address, f"{field}.address")
    # peer_address may be empty: engines do not know it (their proxy may fill it in), and
    # proxies treat a rule without one as local.
    if reg.node:
        name(reg.node, f"{field}.node")
    seen: set[tuple[str, str, str]] = set()
    for i, desc in enumerate(reg.modules):
        module(desc, f"{field}.modules[{i}]")
        tup = (desc.namespace, desc.name, desc.version)
        if tup in seen:
            raise InvalidArgument(f"{field}.modules[{i}]: {module_key(*tup)} is listed twice")
        seen.add(tup)
    for i, req in enumerate(reg.secrets):
        name(req.namespace, f"{field}.secrets[{i}].namespace")
        secret_key(req.key, f"{field}.secrets[{i}].key")
    for i, ns in enumerate(reg.db_namespaces):
        name(ns, f"{field}.db_namespaces[{i}]")


def routing_rule(rule: pb.RoutingRule) -> None:
    identifier(rule.rule_id, "rule_id")
    name(rule.destination_namespace, "destination_namespace")
    name(rule.destination_module, "destination_module")
    version(rule.destination_version, "destination_version")
    non_empty(rule.engine_address, "engine_address")
    non_empty(rule.peer_address, "peer_address")
    if rule.engine_id:
        identifier(rule.engine_id, "engine_id")
    if rule.source_namespace:
        name(rule.source_namespace, "source_namespace")
    if rule.source_module:
        name(rule.source_module, "source_module")


def secret(namespace: str, key: str) -> None:
    name(namespace, "namespace")
    secret_key(key, "key")


def secret_value(value: str) -> None:
    if len(value.encode()) > MAX_SECRET_BYTES:
        raise InvalidArgument(f"value: longer than {MAX_SECRET_BYTES} bytes")


def target(value: str, field: str) -> str:
    if value != MANAGER_TARGET:
        try:
            check_name(value, field)
        except InvalidName:
            raise InvalidArgument(
                f"{field}: {value!r} is neither {MANAGER_TARGET!r} nor a node name ({NAME_RULE})"
            ) from None
    return value


def release(record: pb.ReleaseRecord) -> None:
    target(record.target, "release.target")
    digest(record.bundle_digest, "release.bundle_digest", required=True)
    digest(record.previous_bundle_digest, "release.previous_bundle_digest", required=False)
    for key, value in sorted(record.module_digests.items()):
        _module_key(key, f"release.module_digests[{key!r}]")
        digest(value, f"release.module_digests[{key!r}]", required=True)
    non_empty(record.runtime_version, "release.runtime_version")
    if record.status and record.status not in RELEASE_STATUSES:
        raise InvalidArgument(
            f"release.status: {record.status!r} is not one of {', '.join(RELEASE_STATUSES)}"
        )
    for i, grant in enumerate(record.secret_grants):
        field = f"release.secret_grants[{i}]"
        _module_key(grant.module, f"{field}.module")
        name(grant.namespace, f"{field}.namespace")
        secret_key(grant.key, f"{field}.key")


def _module_key(key: str, field: str) -> None:
    try:
        namespace, module_name, ver = split_module_key(key)
    except ValueError:
        raise InvalidArgument(f"{field}: expected a key like namespace.name@1.0.0") from None
    name(namespace, f"{field} namespace")
    name(module_name, f"{field} name")
    version(ver, f"{field} version")


def lock_ttl(ttl_secs: int, field: str = "ttl_secs") -> int:
    if ttl_secs > MAX_LOCK_TTL_SECS:
        raise InvalidArgument(f"{field}: {ttl_secs} is longer than {MAX_LOCK_TTL_SECS} seconds")
    return ttl_secs or 60


MAX_JOB_TIMEOUT_SECS = 24 * 3600
MAX_JOB_ATTEMPTS = 100
MAX_IDEMPOTENCY_KEY = 200
MAX_TRACEPARENT = 128
MAX_JOB_LIST = 1000


def job_type(value: str, field: str = "job_type") -> str:
    problem = job_type_problem(value)
    if problem:
        raise InvalidArgument(f"{field}: {problem}")
    return value


def job_worker(namespace: str, module: str, ver: str, jtype: str) -> None:
    name(namespace, "worker_namespace")
    name(module, "worker_name")
    if ver:
        version(ver, "worker_version")
    job_type(jtype)


def job_limits(timeout_secs: int, max_attempts: int) -> None:
    if timeout_secs > MAX_JOB_TIMEOUT_SECS:
        raise InvalidArgument(
            f"timeout_secs: {timeout_secs} is above the maximum {MAX_JOB_TIMEOUT_SECS}"
        )
    if max_attempts > MAX_JOB_ATTEMPTS:
        raise InvalidArgument(
            f"max_attempts: {max_attempts} is above the maximum {MAX_JOB_ATTEMPTS}"
        )


def job_payload(payload: bytes, limit: int, field: str = "payload") -> None:
    if len(payload) > limit:
        raise InvalidArgument(
            f"{field}: {len(payload)} bytes is over the job size limit of {limit} bytes"
            " (manager.toml [jobs] max_bytes)"
        )


def submit_job(req: pb.SubmitJobRequest, max_bytes: int) -> None:
    job_worker(req.worker_namespace, req.worker_name, req.worker_version, req.job_type)
    job_limits(req.timeout_secs, req.max_attempts)
    job_payload(req.payload, max_bytes)
    if len(req.idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidArgument(f"idempotency_key: longer than {MAX_IDEMPOTENCY_KEY} characters")
    if len(req.traceparent) > MAX_TRACEPARENT:
        raise InvalidArgument(f"traceparent: longer than {MAX_TRACEPARENT} characters")
    if req.submitted_by:
        host, dot, mod = req.submitted_by.partition(".")
        if not dot:
            raise InvalidArgument(f"submitted_by: {req.submitted_by!r} is not namespace.module")
        name(host, "submitted_by namespace")
        name(mod, "submitted_by module")


def schedule(req: pb.UpsertScheduleRequest, max_bytes: int) -> None:
    name(req.name, "name")
    job_worker(req.worker_namespace, req.worker_name, req.worker_version, req.job_type)
    job_limits(req.timeout_secs, req.max_attempts)
    job_payload(req.payload, max_bytes)
    if bool(req.interval_secs) == bool(req.cron):
        raise InvalidArgument("interval_secs, cron: exactly one of them must be set")
    if req.cron:
        problem = cron_problem(req.cron)
        if problem:
            raise InvalidArgument(f"cron: {problem}")

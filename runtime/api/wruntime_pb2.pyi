import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_PENDING: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_COMPLETE: _ClassVar[JobState]
    JOB_STATE_DEAD: _ClassVar[JobState]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_PENDING: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_COMPLETE: JobState
JOB_STATE_DEAD: JobState

class ModuleDescriptor(_message.Message):
    __slots__ = ("name", "version", "proto_schema", "namespace", "digest", "worker_max_attempts")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTO_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    WORKER_MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    proto_schema: bytes
    namespace: str
    digest: str
    worker_max_attempts: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., proto_schema: _Optional[bytes] = ..., namespace: _Optional[str] = ..., digest: _Optional[str] = ..., worker_max_attempts: _Optional[int] = ...) -> None: ...

class EngineRegistration(_message.Message):
    __slots__ = ("engine_id", "address", "modules", "proxy_address", "secrets", "peer_address", "db_namespaces", "node", "runtime_version")
    ENGINE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MODULES_FIELD_NUMBER: _ClassVar[int]
    PROXY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DB_NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    engine_id: str
    address: str
    modules: _containers.RepeatedCompositeFieldContainer[ModuleDescriptor]
    proxy_address: str
    secrets: _containers.RepeatedCompositeFieldContainer[SecretRequest]
    peer_address: str
    db_namespaces: _containers.RepeatedScalarFieldContainer[str]
    node: str
    runtime_version: str
    def __init__(self, engine_id: _Optional[str] = ..., address: _Optional[str] = ..., modules: _Optional[_Iterable[_Union[ModuleDescriptor, _Mapping]]] = ..., proxy_address: _Optional[str] = ..., secrets: _Optional[_Iterable[_Union[SecretRequest, _Mapping]]] = ..., peer_address: _Optional[str] = ..., db_namespaces: _Optional[_Iterable[str]] = ..., node: _Optional[str] = ..., runtime_version: _Optional[str] = ...) -> None: ...

class ModuleHealth(_message.Message):
    __slots__ = ("module", "healthy", "last_seen")
    MODULE_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    module: ModuleDescriptor
    healthy: bool
    last_seen: _timestamp_pb2.Timestamp
    def __init__(self, module: _Optional[_Union[ModuleDescriptor, _Mapping]] = ..., healthy: _Optional[bool] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class EngineStatus(_message.Message):
    __slots__ = ("registration", "healthy", "registered_at", "last_heartbeat", "modules")
    REGISTRATION_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    MODULES_FIELD_NUMBER: _ClassVar[int]
    registration: EngineRegistration
    healthy: bool
    registered_at: _timestamp_pb2.Timestamp
    last_heartbeat: _timestamp_pb2.Timestamp
    modules: _containers.RepeatedCompositeFieldContainer[ModuleHealth]
    def __init__(self, registration: _Optional[_Union[EngineRegistration, _Mapping]] = ..., healthy: _Optional[bool] = ..., registered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_heartbeat: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., modules: _Optional[_Iterable[_Union[ModuleHealth, _Mapping]]] = ...) -> None: ...

class RoutingRule(_message.Message):
    __slots__ = ("rule_id", "source_module", "destination_module", "engine_id", "engine_address", "destination_version", "healthy", "source_namespace", "destination_namespace", "peer_address")
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_MODULE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_MODULE_FIELD_NUMBER: _ClassVar[int]
    ENGINE_ID_FIELD_NUMBER: _ClassVar[int]
    ENGINE_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_VERSION_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PEER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    source_module: str
    destination_module: str
    engine_id: str
    engine_address: str
    destination_version: str
    healthy: bool
    source_namespace: str
    destination_namespace: str
    peer_address: str
    def __init__(self, rule_id: _Optional[str] = ..., source_module: _Optional[str] = ..., destination_module: _Optional[str] = ..., engine_id: _Optional[str] = ..., engine_address: _Optional[str] = ..., destination_version: _Optional[str] = ..., healthy: _Optional[bool] = ..., source_namespace: _Optional[str] = ..., destination_namespace: _Optional[str] = ..., peer_address: _Optional[str] = ...) -> None: ...

class RoutingTable(_message.Message):
    __slots__ = ("rules", "version")
    RULES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedCompositeFieldContainer[RoutingRule]
    version: int
    def __init__(self, rules: _Optional[_Iterable[_Union[RoutingRule, _Mapping]]] = ..., version: _Optional[int] = ...) -> None: ...

class RegisterEngineRequest(_message.Message):
    __slots__ = ("registration",)
    REGISTRATION_FIELD_NUMBER: _ClassVar[int]
    registration: EngineRegistration
    def __init__(self, registration: _Optional[_Union[EngineRegistration, _Mapping]] = ...) -> None: ...

class RegisterEngineResponse(_message.Message):
    __slots__ = ("accepted", "secrets", "db_credentials")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    DB_CREDENTIALS_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    secrets: _containers.RepeatedCompositeFieldContainer[NamespaceSecrets]
    db_credentials: _containers.RepeatedCompositeFieldContainer[NamespaceDbCredential]
    def __init__(self, accepted: _Optional[bool] = ..., secrets: _Optional[_Iterable[_Union[NamespaceSecrets, _Mapping]]] = ..., db_credentials: _Optional[_Iterable[_Union[NamespaceDbCredential, _Mapping]]] = ...) -> None: ...

class DeregisterEngineRequest(_message.Message):
    __slots__ = ("engine_id",)
    ENGINE_ID_FIELD_NUMBER: _ClassVar[int]
    engine_id: str
    def __init__(self, engine_id: _Optional[str] = ...) -> None: ...

class DeregisterEngineResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("engine_id", "healthy_modules")
    ENGINE_ID_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_MODULES_FIELD_NUMBER: _ClassVar[int]
    engine_id: str
    healthy_modules: _containers.RepeatedCompositeFieldContainer[ModuleDescriptor]
    def __init__(self, engine_id: _Optional[str] = ..., healthy_modules: _Optional[_Iterable[_Union[ModuleDescriptor, _Mapping]]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListEnginesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListEnginesResponse(_message.Message):
    __slots__ = ("engines",)
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    engines: _containers.RepeatedCompositeFieldContainer[EngineStatus]
    def __init__(self, engines: _Optional[_Iterable[_Union[EngineStatus, _Mapping]]] = ...) -> None: ...

class GetRoutingTableRequest(_message.Message):
    __slots__ = ("known_version",)
    KNOWN_VERSION_FIELD_NUMBER: _ClassVar[int]
    known_version: int
    def __init__(self, known_version: _Optional[int] = ...) -> None: ...

class GetRoutingTableResponse(_message.Message):
    __slots__ = ("table",)
    TABLE_FIELD_NUMBER: _ClassVar[int]
    table: RoutingTable
    def __init__(self, table: _Optional[_Union[RoutingTable, _Mapping]] = ...) -> None: ...

class UpsertRoutingRuleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteRoutingRuleRequest(_message.Message):
    __slots__ = ("rule_id",)
    RULE_ID_FIELD_NUMBER: _ClassVar[int]
    rule_id: str
    def __init__(self, rule_id: _Optional[str] = ...) -> None: ...

class DeleteRoutingRuleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NamespaceDbCredential(_message.Message):
    __slots__ = ("namespace", "role", "password")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    role: str
    password: str
    def __init__(self, namespace: _Optional[str] = ..., role: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class SecretRequest(_message.Message):
    __slots__ = ("namespace", "key")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class NamespaceSecrets(_message.Message):
    __slots__ = ("namespace", "secrets")
    class SecretsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    secrets: _containers.ScalarMap[str, str]
    def __init__(self, namespace: _Optional[str] = ..., secrets: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SetSecretRequest(_message.Message):
    __slots__ = ("namespace", "key", "value")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    value: str
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class SetSecretResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteSecretRequest(_message.Message):
    __slots__ = ("namespace", "key")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class DeleteSecretResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSecretsRequest(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class SecretEntry(_message.Message):
    __slots__ = ("namespace", "key", "version", "updated_at")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    key: str
    version: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, namespace: _Optional[str] = ..., key: _Optional[str] = ..., version: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListSecretsResponse(_message.Message):
    __slots__ = ("secrets",)
    SECRETS_FIELD_NUMBER: _ClassVar[int]
    secrets: _containers.RepeatedCompositeFieldContainer[SecretEntry]
    def __init__(self, secrets: _Optional[_Iterable[_Union[SecretEntry, _Mapping]]] = ...) -> None: ...

class ListManagersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ManagerInfo(_message.Message):
    __slots__ = ("manager_id", "grpc_address", "gossip_address")
    MANAGER_ID_FIELD_NUMBER: _ClassVar[int]
    GRPC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GOSSIP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    manager_id: str
    grpc_address: str
    gossip_address: str
    def __init__(self, manager_id: _Optional[str] = ..., grpc_address: _Optional[str] = ..., gossip_address: _Optional[str] = ...) -> None: ...

class ListManagersResponse(_message.Message):
    __slots__ = ("managers",)
    MANAGERS_FIELD_NUMBER: _ClassVar[int]
    managers: _containers.RepeatedCompositeFieldContainer[ManagerInfo]
    def __init__(self, managers: _Optional[_Iterable[_Union[ManagerInfo, _Mapping]]] = ...) -> None: ...

class GetSchemaRequest(_message.Message):
    __slots__ = ("module", "version", "namespace")
    MODULE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    module: str
    version: str
    namespace: str
    def __init__(self, module: _Optional[str] = ..., version: _Optional[str] = ..., namespace: _Optional[str] = ...) -> None: ...

class GetSchemaResponse(_message.Message):
    __slots__ = ("proto_schema",)
    PROTO_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    proto_schema: bytes
    def __init__(self, proto_schema: _Optional[bytes] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("worker_namespace", "worker_name", "worker_version", "job_type", "payload", "timeout_secs", "max_attempts", "idempotency_key", "traceparent", "submitted_by")
    WORKER_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKER_NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_VERSION_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_BY_FIELD_NUMBER: _ClassVar[int]
    worker_namespace: str
    worker_name: str
    worker_version: str
    job_type: str
    payload: bytes
    timeout_secs: int
    max_attempts: int
    idempotency_key: str
    traceparent: str
    submitted_by: str
    def __init__(self, worker_namespace: _Optional[str] = ..., worker_name: _Optional[str] = ..., worker_version: _Optional[str] = ..., job_type: _Optional[str] = ..., payload: _Optional[bytes] = ..., timeout_secs: _Optional[int] = ..., max_attempts: _Optional[int] = ..., idempotency_key: _Optional[str] = ..., traceparent: _Optional[str] = ..., submitted_by: _Optional[str] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job_id", "existing")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EXISTING_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    existing: bool
    def __init__(self, job_id: _Optional[str] = ..., existing: _Optional[bool] = ...) -> None: ...

class GetJobStatusRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class GetJobStatusResponse(_message.Message):
    __slots__ = ("job_id", "status", "result", "error_message", "attempt", "max_attempts", "worker_namespace", "worker_name", "worker_version", "job_type", "created_at", "updated_at", "run_at", "submitted_by", "schedule", "idempotency_key")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    WORKER_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKER_NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_VERSION_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_BY_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: JobState
    result: bytes
    error_message: str
    attempt: int
    max_attempts: int
    worker_namespace: str
    worker_name: str
    worker_version: str
    job_type: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    run_at: _timestamp_pb2.Timestamp
    submitted_by: str
    schedule: str
    idempotency_key: str
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[_Union[JobState, str]] = ..., result: _Optional[bytes] = ..., error_message: _Optional[str] = ..., attempt: _Optional[int] = ..., max_attempts: _Optional[int] = ..., worker_namespace: _Optional[str] = ..., worker_name: _Optional[str] = ..., worker_version: _Optional[str] = ..., job_type: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., submitted_by: _Optional[str] = ..., schedule: _Optional[str] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("worker_namespace", "worker_name", "state", "limit")
    WORKER_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKER_NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    worker_namespace: str
    worker_name: str
    state: JobState
    limit: int
    def __init__(self, worker_namespace: _Optional[str] = ..., worker_name: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[GetJobStatusResponse]
    def __init__(self, jobs: _Optional[_Iterable[_Union[GetJobStatusResponse, _Mapping]]] = ...) -> None: ...

class Schedule(_message.Message):
    __slots__ = ("schedule_id", "worker_namespace", "worker_name", "worker_version", "job_type", "interval_secs", "immediate", "payload", "timeout_secs", "max_attempts", "enabled", "last_fired_at", "next_fire_at", "last_error", "consecutive_failures", "name", "cron")
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKER_NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_VERSION_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECS_FIELD_NUMBER: _ClassVar[int]
    IMMEDIATE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    LAST_FIRED_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIRE_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    schedule_id: str
    worker_namespace: str
    worker_name: str
    worker_version: str
    job_type: str
    interval_secs: int
    immediate: bool
    payload: bytes
    timeout_secs: int
    max_attempts: int
    enabled: bool
    last_fired_at: _timestamp_pb2.Timestamp
    next_fire_at: _timestamp_pb2.Timestamp
    last_error: str
    consecutive_failures: int
    name: str
    cron: str
    def __init__(self, schedule_id: _Optional[str] = ..., worker_namespace: _Optional[str] = ..., worker_name: _Optional[str] = ..., worker_version: _Optional[str] = ..., job_type: _Optional[str] = ..., interval_secs: _Optional[int] = ..., immediate: _Optional[bool] = ..., payload: _Optional[bytes] = ..., timeout_secs: _Optional[int] = ..., max_attempts: _Optional[int] = ..., enabled: _Optional[bool] = ..., last_fired_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_fire_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., consecutive_failures: _Optional[int] = ..., name: _Optional[str] = ..., cron: _Optional[str] = ...) -> None: ...

class UpsertScheduleRequest(_message.Message):
    __slots__ = ("worker_namespace", "worker_name", "worker_version", "job_type", "interval_secs", "immediate", "payload", "timeout_secs", "max_attempts", "name", "cron")
    WORKER_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKER_NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_VERSION_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECS_FIELD_NUMBER: _ClassVar[int]
    IMMEDIATE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECS_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CRON_FIELD_NUMBER: _ClassVar[int]
    worker_namespace: str
    worker_name: str
    worker_version: str
    job_type: str
    interval_secs: int
    immediate: bool
    payload: bytes
    timeout_secs: int
    max_attempts: int
    name: str
    cron: str
    def __init__(self, worker_namespace: _Optional[str] = ..., worker_name: _Optional[str] = ..., worker_version: _Optional[str] = ..., job_type: _Optional[str] = ..., interval_secs: _Optional[int] = ..., immediate: _Optional[bool] = ..., payload: _Optional[bytes] = ..., timeout_secs: _Optional[int] = ..., max_attempts: _Optional[int] = ..., name: _Optional[str] = ..., cron: _Optional[str] = ...) -> None: ...

class UpsertScheduleResponse(_message.Message):
    __slots__ = ("schedule_id", "changed")
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    schedule_id: str
    changed: bool
    def __init__(self, schedule_id: _Optional[str] = ..., changed: _Optional[bool] = ...) -> None: ...

class DeleteScheduleRequest(_message.Message):
    __slots__ = ("worker_namespace", "worker_name", "worker_version", "job_type", "name")
    WORKER_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    WORKER_NAME_FIELD_NUMBER: _ClassVar[int]
    WORKER_VERSION_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    worker_namespace: str
    worker_name: str
    worker_version: str
    job_type: str
    name: str
    def __init__(self, worker_namespace: _Optional[str] = ..., worker_name: _Optional[str] = ..., worker_version: _Optional[str] = ..., job_type: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DeleteScheduleResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ("worker_namespace",)
    WORKER_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    worker_namespace: str
    def __init__(self, worker_namespace: _Optional[str] = ...) -> None: ...

class ListSchedulesResponse(_message.Message):
    __slots__ = ("schedules",)
    SCHEDULES_FIELD_NUMBER: _ClassVar[int]
    schedules: _containers.RepeatedCompositeFieldContainer[Schedule]
    def __init__(self, schedules: _Optional[_Iterable[_Union[Schedule, _Mapping]]] = ...) -> None: ...

class ReleaseRecord(_message.Message):
    __slots__ = ("target", "bundle_digest", "module_digests", "runtime_version", "applied_at", "applied_by", "status", "message", "attributes", "previous_bundle_digest", "secret_grants")
    class ModuleDigestsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class AttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TARGET_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    MODULE_DIGESTS_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_VERSION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_AT_FIELD_NUMBER: _ClassVar[int]
    APPLIED_BY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_BUNDLE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    SECRET_GRANTS_FIELD_NUMBER: _ClassVar[int]
    target: str
    bundle_digest: str
    module_digests: _containers.ScalarMap[str, str]
    runtime_version: str
    applied_at: _timestamp_pb2.Timestamp
    applied_by: str
    status: str
    message: str
    attributes: _containers.ScalarMap[str, str]
    previous_bundle_digest: str
    secret_grants: _containers.RepeatedCompositeFieldContainer[SecretGrant]
    def __init__(self, target: _Optional[str] = ..., bundle_digest: _Optional[str] = ..., module_digests: _Optional[_Mapping[str, str]] = ..., runtime_version: _Optional[str] = ..., applied_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., applied_by: _Optional[str] = ..., status: _Optional[str] = ..., message: _Optional[str] = ..., attributes: _Optional[_Mapping[str, str]] = ..., previous_bundle_digest: _Optional[str] = ..., secret_grants: _Optional[_Iterable[_Union[SecretGrant, _Mapping]]] = ...) -> None: ...

class SecretGrant(_message.Message):
    __slots__ = ("module", "namespace", "key")
    MODULE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    module: str
    namespace: str
    key: str
    def __init__(self, module: _Optional[str] = ..., namespace: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class ApplyLock(_message.Message):
    __slots__ = ("lock_id", "holder", "reason", "acquired_at", "expires_at")
    LOCK_ID_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACQUIRED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    lock_id: str
    holder: str
    reason: str
    acquired_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, lock_id: _Optional[str] = ..., holder: _Optional[str] = ..., reason: _Optional[str] = ..., acquired_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NodeState(_message.Message):
    __slots__ = ("name", "release", "engines", "pending")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    name: str
    release: ReleaseRecord
    engines: _containers.RepeatedCompositeFieldContainer[EngineStatus]
    pending: ReleaseRecord
    def __init__(self, name: _Optional[str] = ..., release: _Optional[_Union[ReleaseRecord, _Mapping]] = ..., engines: _Optional[_Iterable[_Union[EngineStatus, _Mapping]]] = ..., pending: _Optional[_Union[ReleaseRecord, _Mapping]] = ...) -> None: ...

class GetClusterStateRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClusterStateResponse(_message.Message):
    __slots__ = ("serial", "manager_release", "nodes", "lock", "manager_version", "cluster", "explicit_rules")
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    MANAGER_RELEASE_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    LOCK_FIELD_NUMBER: _ClassVar[int]
    MANAGER_VERSION_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    EXPLICIT_RULES_FIELD_NUMBER: _ClassVar[int]
    serial: int
    manager_release: ReleaseRecord
    nodes: _containers.RepeatedCompositeFieldContainer[NodeState]
    lock: ApplyLock
    manager_version: str
    cluster: str
    explicit_rules: _containers.RepeatedCompositeFieldContainer[RoutingRule]
    def __init__(self, serial: _Optional[int] = ..., manager_release: _Optional[_Union[ReleaseRecord, _Mapping]] = ..., nodes: _Optional[_Iterable[_Union[NodeState, _Mapping]]] = ..., lock: _Optional[_Union[ApplyLock, _Mapping]] = ..., manager_version: _Optional[str] = ..., cluster: _Optional[str] = ..., explicit_rules: _Optional[_Iterable[_Union[RoutingRule, _Mapping]]] = ...) -> None: ...

class RecordReleaseRequest(_message.Message):
    __slots__ = ("release", "lock_id")
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    LOCK_ID_FIELD_NUMBER: _ClassVar[int]
    release: ReleaseRecord
    lock_id: str
    def __init__(self, release: _Optional[_Union[ReleaseRecord, _Mapping]] = ..., lock_id: _Optional[str] = ...) -> None: ...

class RecordReleaseResponse(_message.Message):
    __slots__ = ("serial",)
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    serial: int
    def __init__(self, serial: _Optional[int] = ...) -> None: ...

class ListReleasesRequest(_message.Message):
    __slots__ = ("target", "limit")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    target: str
    limit: int
    def __init__(self, target: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListReleasesResponse(_message.Message):
    __slots__ = ("releases",)
    RELEASES_FIELD_NUMBER: _ClassVar[int]
    releases: _containers.RepeatedCompositeFieldContainer[ReleaseRecord]
    def __init__(self, releases: _Optional[_Iterable[_Union[ReleaseRecord, _Mapping]]] = ...) -> None: ...

class DeleteReleaseRequest(_message.Message):
    __slots__ = ("target", "lock_id")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    LOCK_ID_FIELD_NUMBER: _ClassVar[int]
    target: str
    lock_id: str
    def __init__(self, target: _Optional[str] = ..., lock_id: _Optional[str] = ...) -> None: ...

class DeleteReleaseResponse(_message.Message):
    __slots__ = ("serial",)
    SERIAL_FIELD_NUMBER: _ClassVar[int]
    serial: int
    def __init__(self, serial: _Optional[int] = ...) -> None: ...

class AcquireApplyLockRequest(_message.Message):
    __slots__ = ("holder", "reason", "ttl_secs")
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    TTL_SECS_FIELD_NUMBER: _ClassVar[int]
    holder: str
    reason: str
    ttl_secs: int
    def __init__(self, holder: _Optional[str] = ..., reason: _Optional[str] = ..., ttl_secs: _Optional[int] = ...) -> None: ...

class AcquireApplyLockResponse(_message.Message):
    __slots__ = ("acquired", "lock")
    ACQUIRED_FIELD_NUMBER: _ClassVar[int]
    LOCK_FIELD_NUMBER: _ClassVar[int]
    acquired: bool
    lock: ApplyLock
    def __init__(self, acquired: _Optional[bool] = ..., lock: _Optional[_Union[ApplyLock, _Mapping]] = ...) -> None: ...

class RenewApplyLockRequest(_message.Message):
    __slots__ = ("lock_id", "ttl_secs")
    LOCK_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_SECS_FIELD_NUMBER: _ClassVar[int]
    lock_id: str
    ttl_secs: int
    def __init__(self, lock_id: _Optional[str] = ..., ttl_secs: _Optional[int] = ...) -> None: ...

class RenewApplyLockResponse(_message.Message):
    __slots__ = ("lock",)
    LOCK_FIELD_NUMBER: _ClassVar[int]
    lock: ApplyLock
    def __init__(self, lock: _Optional[_Union[ApplyLock, _Mapping]] = ...) -> None: ...

class ReleaseApplyLockRequest(_message.Message):
    __slots__ = ("lock_id",)
    LOCK_ID_FIELD_NUMBER: _ClassVar[int]
    lock_id: str
    def __init__(self, lock_id: _Optional[str] = ...) -> None: ...

class ReleaseApplyLockResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ForceUnlockRequest(_message.Message):
    __slots__ = ("lock_id",)
    LOCK_ID_FIELD_NUMBER: _ClassVar[int]
    lock_id: str
    def __init__(self, lock_id: _Optional[str] = ...) -> None: ...

class ForceUnlockResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

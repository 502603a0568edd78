"""The cluster.toml model: what a user may declare, with defaults and per-field rules."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import semver
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from runtime import wire
from runtime.capability_config import (
    BlobstoreSettings,
    DatabaseSettings,
    LlmSettings,
    bucket_problem,
)
from runtime.capability_config import SecretRef as CapabilitySecretRef
from runtime.engine.capabilities import REGISTRY
from runtime.names import NAME_RE, NAME_RULE
from wrctl.config import hostvalues as hv
from wrctl.config.values import PYTHON_RE, platform_problem, public_key_problem

Format = Literal["systemd", "docker", "supervisor"]
Port = Annotated[int, Field(ge=1, le=65535)]


def _rule(problem: Callable[[str], str | None]) -> AfterValidator:
    """A pydantic validator from a `*_problem` rule (None: fine, else why not)."""

    def check(value: str) -> str:
        found = problem(value)
        if found:
            raise ValueError(found)
        return value

    return AfterValidator(check)


Host = Annotated[str, _rule(hv.host_problem)]
Text = Annotated[str, _rule(hv.text_problem)]  # one line: file paths, URLs
User = Annotated[str, _rule(hv.user_problem)]
Workdir = Annotated[str, _rule(hv.path_problem)]
Command = Annotated[str, _rule(hv.command_problem)]


def _valid_name(v: str) -> str:
    if not NAME_RE.fullmatch(v):
        raise ValueError(f"{v!r} is not a valid name ({NAME_RULE})")
    return v


def _valid_version(v: str) -> str:
    if not semver.Version.is_valid(v):
        raise ValueError(f"{v!r} is not a semantic version (expected like 1.2.0)")
    return v


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClusterSection(_Strict):
    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _valid_name(v)


class HostSettings(_Strict):
    """How a host is reached and run; [defaults] sets them, [manager]/[[node]] override."""

    format: Format | None = None
    user: User | None = None
    ssh_key: Text | None = None
    ssh_port: Port | None = None
    jump_host: Annotated[str, _rule(hv.jump_host_problem)] | None = None
    workdir: Workdir | None = None
    python: Command | None = None
    sudo: bool | None = None
    docker_base_image: Annotated[str, _rule(hv.image_problem)] | None = None


class Defaults(HostSettings):
    format: Format | None = "systemd"
    user: User | None = "deploy"
    ssh_port: Port | None = 22
    workdir: Workdir | None = "/opt/wruntime"
    python: Command | None = "python3"
    sudo: bool | None = False


class ManagerSection(HostSettings):
    host: Host = "local"
    # Several managers (active-active on the PostgreSQL `state`), instead of `host`: each
    # host runs one, with the same ports and settings.
    hosts: list[Host] | None = None
    port: Port = wire.MANAGER_PORT
    admin_port: Port = wire.MANAGER_ADMIN_PORT
    state: Text = "sqlite"
    heartbeat_timeout_secs: Annotated[int, Field(ge=1, le=3600)] = wire.HEARTBEAT_TIMEOUT_SECS

    @field_validator("state")
    @classmethod
    def _state(cls, v: str) -> str:
        if v != "sqlite" and not v.startswith(("postgres://", "postgresql://")):
            raise ValueError('expected "sqlite" or a postgres://... URL')
        try:
            _ = urlsplit(v).port  # what plan and bundle read of it; a bad port raises too
        except ValueError as exc:
            raise ValueError(f"{v!r} is not a URL ({exc})") from None
        return v

    @property
    def all_hosts(self) -> list[str]:
        """Where managers run: `hosts`, else the one `host`."""
        return list(self.hosts) if self.hosts else [self.host]


class NodeSection(HostSettings):
    name: str
    host: Host
    engines: Annotated[int, Field(ge=1, le=64)] = 1
    data_port: Port = wire.PROXY_DATA_PORT
    control_port: Port = wire.PROXY_CONTROL_PORT
    admin_port: Port = wire.PROXY_ADMIN_PORT
    peer_port: Port = wire.PEER_PORT
    engine_port: Port = wire.ENGINE_PORT

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _valid_name(v)


class SecretRef(_Strict):
    secret: str

    @field_validator("secret")
    @classmethod
    def _key(cls, v: str) -> str:
        return _valid_name(v)


def _env_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict | SecretRef):
        return "SecretRef"
    return None


EnvValue = Annotated[
    Annotated[str, Tag("str")] | Annotated[SecretRef, Tag("SecretRef")],
    Discriminator(
        _env_kind,
        custom_error_type="env_value",
        custom_error_message='expected a string or { secret = "name" }',
    ),
]
UNION_TAGS = frozenset({"str", "SecretRef"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _secret_only(value: object, field: str) -> None:
    if not isinstance(value, SecretRef | CapabilitySecretRef):
        raise ValueError(
            f'{field} is a secret: write {{ secret = "name" }} and store it with '
            "`wrctl secrets set NAMESPACE name` (plain text here would reach the bundles)"
        )


class DatabaseSection(DatabaseSettings):
    """[database] (see runtime/capability_config.py). Apply reads the password of the URL's
    user from WR_DB_PASSWORD, PGPASSWORD or ~/.pgpass: a URL with a password is refused."""

    @field_validator("url")
    @classmethod
    def _no_password(cls, v: str) -> str:
        if urlsplit(v).password:
            raise ValueError(
                "the URL holds a password; leave it out (apply reads WR_DB_PASSWORD, "
                "PGPASSWORD or ~/.pgpass, and engines log in as their namespace's role)"
            )
        return v


class BlobstoreSection(BlobstoreSettings):
    @field_validator("secret_access_key")
    @classmethod
    def _secret(cls, v: object) -> object:
        _secret_only(v, "secret_access_key")
        return v


class LlmSection(LlmSettings):
    @field_validator("api_key")
    @classmethod
    def _secret(cls, v: object) -> object:
        _secret_only(v, "api_key")
        return v


class ModuleSection(_Strict):
    namespace: str
    name: str
    version: str
    component: str
    schema_: str | None = Field(default=None, alias="schema")
    nodes: list[str] | None = None
    replicas: Annotated[int, Field(ge=1, le=64)] = 1
    env: dict[str, EnvValue] = {}
    request_timeout_secs: Annotated[int, Field(ge=1, le=3600)] = wire.REQUEST_TIMEOUT_SECS
    memory_limit_mb: Annotated[int, Field(ge=16, le=wire.MAX_MEMORY_LIMIT_MB)] = (
        wire.MEMORY_LIMIT_MB
    )
    max_body_mb: Annotated[int, Field(ge=1, le=wire.MAX_BODY_LIMIT_MB)] = wire.BODY_LIMIT_MB
    capabilities: list[wire.Capability] = []
    # db: a directory of V<n>__<name>.sql files, relative to cluster.toml, run by apply
    migrations: Text | None = None
    # blobstore: the buckets this module may use (each call's bucket is checked against it)
    allowed_buckets: list[Annotated[str, _rule(bucket_problem)]] = []
    # llm: tokens (input + output) per minute for this module; default [llm] tokens_per_minute
    llm_tokens_per_minute: Annotated[int, Field(ge=1)] | None = None
    # jobs: attempts of this version's jobs when a submit names none (else 3)
    worker_max_attempts: Annotated[int, Field(ge=1, le=100)] | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("namespace", "name")
    @classmethod
    def _names(cls, v: str) -> str:
        return _valid_name(v)

    @field_validator("version")
    @classmethod
    def _version(cls, v: str) -> str:
        return _valid_version(v)

    @field_validator("env")
    @classmethod
    def _env_keys(cls, v: dict[str, str | SecretRef]) -> dict[str, str | SecretRef]:
        for key in v:
            if not _ENV_NAME.fullmatch(key):
                raise ValueError(
                    f"env name {key!r} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"
                )
        return v

    @property
    def address(self) -> str:
        return f"module.{self.namespace}.{self.name}"


Method = Annotated[str, _rule(wire.method_problem)]


class ScheduleSection(_Strict):
    """[[schedule]]: a job the managers submit every interval_secs, or at the times of a
    five-field cron expression (UTC). Written by apply, fired by the managers (first fire of
    an interval schedule at once), at least once."""

    name: str
    module: str  # "namespace.name" of a [[module]]
    job_type: Annotated[str, _rule(wire.job_type_problem)]
    interval_secs: Annotated[int, Field(ge=1, le=366 * 86400)] | None = None
    cron: str | None = None
    payload: dict[str, Any] | str | None = None  # a TOML table, or JSON text
    timeout_secs: Annotated[int, Field(ge=1, le=24 * 3600)] = wire.REQUEST_TIMEOUT_SECS
    max_attempts: Annotated[int, Field(ge=1, le=100)] | None = None
    version: str | None = None  # only this version runs it; any version when absent

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _valid_name(v)

    @field_validator("module")
    @classmethod
    def _module(cls, v: str) -> str:
        namespace, dot, name = v.partition(".")
        if not dot:
            raise ValueError(f"{v!r} is not namespace.name of a [[module]]")
        _valid_name(namespace)
        _valid_name(name)
        return v

    @field_validator("version")
    @classmethod
    def _version(cls, v: str | None) -> str | None:
        return v if v is None else _valid_version(v)

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        from runtime.manager.schedule_times import cron_problem

        problem = None if v is None else cron_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("payload")
    @classmethod
    def _payload(cls, v: dict[str, Any] | str | None) -> dict[str, Any] | str | None:
        if isinstance(v, str):
            try:
                json.loads(v)
            except ValueError as exc:
                raise ValueError(f"payload text is not JSON: {exc}") from None
        return v

    @model_validator(mode="after")
    def _when(self) -> ScheduleSection:
        if (self.interval_secs is None) == (self.cron is None):
            raise ValueError("set exactly one of interval_secs and cron")
        return self

    @property
    def namespace_name(self) -> tuple[str, str]:
        namespace, _, name = self.module.partition(".")
        return namespace, name

    def payload_bytes(self) -> bytes:
        """The payload as the job receives it: canonical JSON (b"" when there is none)."""
        if self.payload is None:
            return b""
        value = json.loads(self.payload) if isinstance(self.payload, str) else self.payload
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()

    @property
    def address(self) -> str:
        return f"schedule.{self.name}"


class ExternalRoute(_Strict):
    """A public route; the proxy loads it with the same rules (runtime/wire.py)."""

    path: str
    namespace: str
    module: str
    methods: list[Method] = []

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        problem = wire.route_path_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("namespace", "module")
    @classmethod
    def _names(cls, v: str) -> str:
        return _valid_name(v)


class CircuitBreaker(_Strict):
    failure_threshold: Annotated[int, Field(ge=1)] = wire.BREAKER_FAILURES
    open_duration_secs: Annotated[int, Field(ge=1)] = wire.BREAKER_OPEN_SECS


class ProxySection(_Strict):
    egress_allowlist: list[Annotated[str, _rule(wire.egress_domain_problem)]] = []
    external_port: Port | None = None
    request_timeout_secs: Annotated[int, Field(ge=1, le=3600)] = wire.REQUEST_TIMEOUT_SECS
    route: list[ExternalRoute] = []
    circuit_breaker: CircuitBreaker = CircuitBreaker()


def _trusted_key_problem(v: str) -> str | None:
    problem = public_key_problem(v)
    return f"{problem} (make one with `wrctl bundle keygen FILE`)" if problem else None


TrustedKey = Annotated[str, _rule(_trusted_key_problem)]


class BundleSection(_Strict):
    """[bundle]: signing. With trusted_keys set, a deploy refuses any bundle whose
    manifest is not signed by one of them; signing_key is what apply signs with."""

    trusted_keys: list[TrustedKey] = []
    signing_key: Text | None = None  # PEM ed25519 private key, relative to cluster.toml
    # What wheels apply ships to hosts without the runtime (default: this machine's tag)
    platform: str | None = None
    python: str = "3.11"

    @field_validator("platform")
    @classmethod
    def _platform(cls, v: str | None) -> str | None:
        problem = None if v is None else platform_problem(v)
        if problem:
            raise ValueError(problem)
        return v

    @field_validator("python")
    @classmethod
    def _python(cls, v: str) -> str:
        if not PYTHON_RE.fullmatch(v):
            raise ValueError(f"{v!r} is not a Python version (expected like 3.11)")
        return v


class ClusterConfig(_Strict):
    """A whole cluster.toml. `source` is the file it came from (paths resolve against it)."""

    cluster: ClusterSection
    manager: ManagerSection = ManagerSection()
    defaults: Defaults = Defaults()
    node: list[NodeSection] = []
    module: list[ModuleSection] = []
    proxy: ProxySection = ProxySection()
    bundle: BundleSection = BundleSection()
    database: DatabaseSection | None = None
    blobstore: BlobstoreSection | None = None
    llm: LlmSection | None = None
    schedule: list[ScheduleSection] = []
    source: Path = Field(default=Path("cluster.toml"), exclude=True)

    @model_validator(mode="after")
    def _has_nodes(self) -> ClusterConfig:
        if not self.node:
            raise ValueError("at least one [[node]] is required")
        return self

    def capability_config(self) -> dict[str, Any]:
        """The capability sections as engine.toml holds them ([database], [blobstore],
        [llm]): what runtime.engine.capabilities reads (secret_keys, missing_node_config)."""
        sections = (spec.section for spec in REGISTRY.values() if spec.section)
        return {
            name: section.model_dump(mode="json", exclude_none=True)
            for name in sections
            if (section := getattr(self, name)) is not None
        }

"""engine.toml: the wr-engine config model (unknown keys are errors)."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
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
from runtime.engine.capabilities import grant_problem
from runtime.identity import TlsFiles
from runtime.names import check_name, check_version
from runtime.tomlconfig import load_config
from runtime.wire import Capability

LOOPBACK_NAMES = {"localhost"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SecretRef(_Strict):
    """`{ secret = "key" }`: the value is the namespace secret `key`, resolved at registration."""

    secret: str = Field(min_length=1)


class NodeTls(_Strict):
    """The node certificate, its key and the cluster CA (the proxy's [node.tls] files): the
    engine presents it to its proxy's control port and verifies the proxy as a node."""

    cert_path: Path
    key_path: Path
    ca_cert_path: Path

    def files(self) -> TlsFiles:
        return TlsFiles(self.cert_path, self.key_path, self.ca_cert_path)


class NodeConfig(_Strict):
    name: str = ""
    proxy_address: str = f"http://127.0.0.1:{wire.PROXY_DATA_PORT}"
    control_address: str | None = None
    tls: NodeTls | None = None  # required with control_address

    @model_validator(mode="after")
    def _tls_for_control(self) -> NodeConfig:
        if self.control_address and self.tls is None:
            raise ValueError(
                "[node.tls] (cert_path, key_path, ca_cert_path of the node certificate) is"
                " required when control_address is set: the proxy's control port takes"
                " mutual TLS only"
            )
        return self

    @field_validator("proxy_address")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(
                f"expected an http:// URL such as http://127.0.0.1:9001, got {value!r}"
            )
        return value.rstrip("/")


class ModuleConfig(_Strict):
    name: str
    namespace: str
    version: str
    wasm_path: Path
    schema_path: Path | None = None
    request_timeout_secs: float = Field(default=float(wire.REQUEST_TIMEOUT_SECS), gt=0)
    memory_limit_mb: int = Field(default=wire.MEMORY_LIMIT_MB, gt=0, le=wire.MAX_MEMORY_LIMIT_MB)
    max_body_mb: int = Field(default=wire.BODY_LIMIT_MB, gt=0, le=wire.MAX_BODY_LIMIT_MB)
    env: dict[str, str | SecretRef] = Field(default_factory=dict)
    capabilities: list[Capability] = Field(default_factory=list)
    allowed_buckets: list[str] = Field(default_factory=list)  # blobstore
    llm_tokens_per_minute: int | None = Field(default=None, ge=1)  # else [llm]'s
    # Attempts of this version's jobs when a submit names none (else 3); told to the manager.
    worker_max_attempts: int | None = Field(default=None, ge=1, le=100)

    @field_validator("name", "namespace")
    @classmethod
    def _name(cls, value: str, info: ValidationInfo) -> str:
        return check_name(value, info.field_name or "name")

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        return check_version(value, "version")

    @field_validator("allowed_buckets")
    @classmethod
    def _buckets(cls, value: list[str]) -> list[str]:
        for name in value:
            problem = bucket_problem(name)
            if problem:
                raise ValueError(problem)
        return value

    @property
    def key(self) -> str:
        """`namespace.name` (one version of a module per engine)."""
        return wire.module_host(self.namespace, self.name)

    def inline_env(self) -> dict[str, str]:
        return {k: v for k, v in self.env.items() if isinstance(v, str)}

    def secret_keys(self) -> dict[str, str]:
        """env variable -> secret key, for the values registration resolves."""
        return {k: v.secret for k, v in self.env.items() if isinstance(v, SecretRef)}


class LimitsConfig(_Strict):
    """Per-request ceilings on live host resources a guest creates."""

    max_spans: int = Field(default=1024, ge=1, le=65536)  # tracing spans open at once


class EngineConfig(_Strict):
    listen_address: str = f"127.0.0.1:{wire.ENGINE_PORT}"
    allow_non_loopback: bool = False
    workers: int = Field(default_factory=lambda: os.cpu_count() or 1, gt=0, le=64)
    cache_dir: Path = Field(default_factory=lambda: default_cache() / "components")
    log_level: str = "info"
    otlp_endpoint: str | None = None  # traces (OTLP/gRPC); else OTEL_EXPORTER_OTLP_ENDPOINT
    trace_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    # Keep this much of each pooled instance's memory resident between requests: lower latency
    # for more CPU per request (see runtime/engine/wasm_config.py). 16 suits Python guests.
    resident_memory_mb: int = Field(default=0, ge=0, le=1024)
    limits: LimitsConfig = Field(default_factory=lambda: LimitsConfig())
    # the capabilities' sections (runtime/capability_config.py), same as in cluster.toml
    database: DatabaseSettings | None = None
    blobstore: BlobstoreSettings | None = None
    llm: LlmSettings | None = None
    node: NodeConfig = Field(default_factory=NodeConfig)
    module: list[ModuleConfig] = Field(default_factory=list)

    @field_validator("listen_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_host_port(value)
        return value

    @model_validator(mode="after")
    def _checks(self) -> EngineConfig:
        host, _ = split_host_port(self.listen_address)
        if not self.allow_non_loopback and not is_loopback(host):
            raise ValueError(
                f"listen_address {self.listen_address!r} is not loopback; the engine is reached "
                "through the node proxy (set allow_non_loopback = true to bind it anyway)"
            )
        seen: set[str] = set()
        node_config = self.model_dump(mode="json", exclude={"module"})
        for m in self.module:
            if m.key in seen:
                raise ValueError(f"module {m.key} is declared twice")
            seen.add(m.key)
            problem = grant_problem(m.key, m.capabilities, node_config)
            if problem:
                raise ValueError(problem)
        return self

    def resolve_paths(self, base: Path) -> EngineConfig:
        """Make relative paths relative to the config file's directory."""
        for m in self.module:
            m.wasm_path = base / m.wasm_path
            if m.schema_path is not None:
                m.schema_path = base / m.schema_path
        self.cache_dir = base / self.cache_dir.expanduser()
        tls = self.node.tls
        if tls is not None:
            tls.cert_path, tls.key_path = base / tls.cert_path, base / tls.key_path
            tls.ca_cert_path = base / tls.ca_cert_path
        return self


def default_cache() -> Path:
    return Path(os.environ.get("WRUNTIME_CACHE") or Path.home() / ".cache" / "wruntime")


def split_host_port(address: str) -> tuple[str, int]:
    """`127.0.0.1:9100` / `[::1]:9100` -> (host, port); ValueError says what was expected."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected host:port such as 127.0.0.1:9100, got {address!r}")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_engine_config(path: str | Path) -> EngineConfig:
    """Read engine.toml; raises runtime.tomlconfig.ConfigError naming the file and key."""
    path = Path(path)
    return load_config(path, EngineConfig).resolve_paths(path.parent.resolve())

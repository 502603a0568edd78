"""manager.toml: the model of wr-manager's config file and where its state lives."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from runtime.identity import TlsFiles
from runtime.names import check_name
from runtime.tomlconfig import load_config
from runtime.wire import (
    HEARTBEAT_TIMEOUT_SECS,
    MANAGER_ADMIN_PORT,
    MANAGER_PORT,
    PROXY_DATA_PORT,
    REQUEST_TIMEOUT_SECS,
)

DEFAULT_DATA_DIR = "/var/lib/wruntime"
SQLITE_FILE = "manager.db"


class ManagerTls(BaseModel):
    """[tls]: the manager's certificate (with the wr-manager name and a manager identity), its
    key and the cluster CA that signs every caller's certificate. There is no insecure mode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cert_path: Path
    key_path: Path
    ca_cert_path: Path

    def files(self) -> TlsFiles:
        return TlsFiles(self.cert_path, self.key_path, self.ca_cert_path)


class JobsConfig(BaseModel):
    """[jobs]: the worker job queue (storage limits, leases, retries, dispatch)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The most bytes a job's payload, or its result, may hold (at most 3 MiB: a job travels
    # in gRPC messages, which are capped at 4 MiB).
    max_bytes: int = Field(default=1024 * 1024, ge=1, le=3 * 1024 * 1024)
    # An attempt's deadline when the submit names none. The proxy's request_timeout_secs
    # (30 s by default) also bounds it: a longer one needs the proxy's raised too.
    timeout_secs: int = Field(default=REQUEST_TIMEOUT_SECS, ge=1, le=24 * 3600)
    # A claim's lease is the attempt's timeout plus this; after it another claim may take the
    # job (the first holder's result is then dropped by the fence).
    lease_grace_secs: float = Field(default=5.0, gt=0)
    # Retry n waits min(cap, base * 2**(n-1)), with jitter of -20%..+0%.
    retry_base_secs: float = Field(default=5.0, gt=0)
    retry_cap_secs: float = Field(default=300.0, gt=0)
    # How often the dispatcher looks for due jobs and schedules (a submit to this manager
    # wakes it at once).
    poll_secs: float = Field(default=0.5, gt=0, le=60)
    concurrency: int = Field(default=32, ge=1, le=1024)  # attempts in flight per manager
    dispatch: bool = True  # false: store jobs and schedules, never run them


class ManagerConfig(BaseModel):
    """Every key of manager.toml; unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tls: ManagerTls

    # The cluster this manager serves ([cluster] name of cluster.toml): wrctl refuses to plan
    # another cluster's changes against it. "" for a manager run by hand.
    cluster: str = ""
    listen_address: str = f"127.0.0.1:{MANAGER_PORT}"
    admin_address: str = f"127.0.0.1:{MANAGER_ADMIN_PORT}"
    data_dir: str = DEFAULT_DATA_DIR
    # "sqlite" (data_dir/manager.db), "sqlite:///abs/path.db", "sqlite:rel/path.db" (relative
    # to data_dir) or "postgresql://user@host:port/db".
    state: str = "sqlite"
    postgres_max_connections: int = Field(default=10, ge=1, le=200)
    engine_heartbeat_timeout_secs: float = Field(default=float(HEARTBEAT_TIMEOUT_SECS), gt=0)
    module_heartbeat_timeout_secs: float | None = Field(default=None, gt=0)
    # Silent or deregistered engines stay listed as unhealthy for this long, then are deleted.
    engine_retention_secs: float = Field(default=3600.0, gt=0)
    secrets_key_env: str = "WR_SECRETS_KEY"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    otlp_endpoint: str | None = None
    trace_sample_ratio: float = Field(default=1.0, ge=0, le=1)
    # The node proxy jobs are dispatched through (plain HTTP on loopback, like an engine's
    # proxy_address): it routes each attempt to a healthy engine of the worker.
    local_proxy_address: str = f"http://127.0.0.1:{PROXY_DATA_PORT}"
    jobs: JobsConfig = JobsConfig()
    # Manager liveness (several managers on one PostgreSQL): the host:port other parts dial
    # for this manager (default: listen_address with its bound port; a wildcard host becomes
    # this machine's hostname), how often its row is refreshed, and how old a row may be
    # before ListManagers leaves it out.
    advertise_address: str | None = None
    manager_heartbeat_secs: float = Field(default=15.0, gt=0)
    manager_expiry_secs: float = Field(default=60.0, gt=0)

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, value: str) -> str:
        return check_name(value, "cluster") if value else value

    @field_validator("listen_address", "admin_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        split_host_port(value)
        return value

    @field_validator("advertise_address")
    @classmethod
    def _advertised(cls, value: str | None) -> str | None:
        if value is not None and split_host_port(value)[1] == 0:
            raise ValueError(f"{value!r} needs a real port (callers dial it)")
        return value

    @field_validator("local_proxy_address")
    @classmethod
    def _proxy_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError("expected the node proxy's URL like http://127.0.0.1:9001")
        return value.rstrip("/")

    @field_validator("state")
    @classmethod
    def _state_url(cls, value: str) -> str:
        scheme = value.split(":", 1)[0]
        if scheme not in {"sqlite", "postgres", "postgresql"}:
            raise ValueError(
                'expected "sqlite", "sqlite:///path/state.db" or "postgresql://user@host/db"'
            )
        return value

    @field_validator("secrets_key_env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        if not value or not value.replace("_", "").isalnum():
            raise ValueError("expected an environment variable name such as WR_SECRETS_KEY")
        return value

    @model_validator(mode="after")
    def _timeouts(self) -> ManagerConfig:
        if self.engine_retention_secs <= self.engine_heartbeat_timeout_secs:
            raise ValueError(
                "engine_retention_secs must be longer than engine_heartbeat_timeout_secs"
            )
        if self.manager_expiry_secs <= self.manager_heartbeat_secs:
            raise ValueError("manager_expiry_secs must be longer than manager_heartbeat_secs")
        return self

    @property
    def module_timeout(self) -> float:
        """module_heartbeat_timeout_secs, defaulting to the engine timeout."""
        return self.module_heartbeat_timeout_secs or self.engine_heartbeat_timeout_secs

    def state_url(self) -> str:
        """The store URL with sqlite paths made absolute ("sqlite:///abs/path" or postgres)."""
        if not self.state.startswith("sqlite"):
            return self.state
        data_dir = Path(self.data_dir)
        if self.state == "sqlite":
            return f"sqlite://{data_dir / SQLITE_FILE}"
        path = Path(urlsplit(self.state).path)
        return f"sqlite://{path if path.is_absolute() else data_dir / path}"


def split_host_port(address: str) -> tuple[str, int]:
    """Split "host:port" (IPv6 as "[::1]:port"; port 0 = any free port); raise ValueError
    saying what was expected."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port (expected like 127.0.0.1:9000)")
    return host.strip("[]"), int(port)


def load_manager_config(path: str | Path) -> ManagerConfig:
    """Load manager.toml; a relative data_dir and relative [tls] paths are taken relative to
    the file's directory."""
    config = load_config(path, ManagerConfig)
    base = Path(path).resolve().parent
    tls = config.tls.model_copy(
        update={
            name: base / getattr(config.tls, name)
            for name in ("cert_path", "key_path", "ca_cert_path")
        }
    )
    data_dir = Path(config.data_dir)
    if not data_dir.is_absolute():
        data_dir = (base / data_dir).resolve()
    return config.model_copy(update={"data_dir": str(data_dir), "tls": tls})

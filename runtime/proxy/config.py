"""The wr-proxy config file (proxy.toml) as a pydantic model, with address checks."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from runtime import wire
from runtime.identity import TlsFiles
from runtime.names import check_name
from runtime.tomlconfig import load_config

_LOOPBACK_NAMES = {"localhost"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def split_host_port(address: str) -> tuple[str, int]:
    """Split "host:port" or "[v6]:port" into (host, port); ValueError says what was expected."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port (e.g. 127.0.0.1:9001 or [::1]:9001)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


def is_loopback(host: str) -> bool:
    """True for localhost and loopback IP literals."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _loopback_address(value: str) -> str:
    host, _ = split_host_port(value)
    if not is_loopback(host):
        raise ValueError(f"{value!r} must bind a loopback address (127.0.0.1, ::1 or localhost)")
    return value


def _host_port(value: str) -> str:
    split_host_port(value)
    return value


def url_authority(host: str, port: int) -> str:
    """host:port with IPv6 literals bracketed."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class NodeTls(_Strict):
    """The node certificate (identity `wruntime://<cluster>/node/<name>`), its key and the
    cluster CA: the peer listener and client, the control port and the manager channel use it."""

    cert_path: Path
    key_path: Path
    ca_cert_path: Path

    def files(self) -> TlsFiles:
        return TlsFiles(self.cert_path, self.key_path, self.ca_cert_path)


class NodeSection(_Strict):
    """Who this node is and how peers reach it."""

    name: str = ""
    proxy_address: str = f"http://127.0.0.1:{wire.PROXY_DATA_PORT}"
    peer_port: int = Field(default=wire.PEER_PORT, gt=0, lt=65536)
    peer_listen_host: str = "0.0.0.0"
    tls: NodeTls

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_name(value, "node.name") if value else value

    @field_validator("proxy_address")
    @classmethod
    def _proxy_address(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"{value!r} must be an absolute http(s) URL with a host")
        return value

    @property
    def peer_host(self) -> str:
        host = urlsplit(self.proxy_address).hostname
        assert host is not None  # checked by the validator
        return host

    @property
    def peer_address(self) -> str:
        """The address routing rules use for this node: https://{proxy host}:{peer_port}."""
        return f"https://{url_authority(self.peer_host, self.peer_port)}"

    @property
    def node_id(self) -> str:
        """How this node names itself in x-wr-via-proxy: its name, else its peer authority."""
        return self.name or url_authority(self.peer_host, self.peer_port)


class CacheSection(_Strict):
    """Routing-table cache: how often the manager is polled with known_version."""

    routing_table_poll_ms: int = Field(default=500, gt=0, le=60_000)


class EgressSection(_Strict):
    """Non-cluster hosts guests may call: exact names or `*.domain` (exactly one label)."""

    allowed_domains: list[str] = []

    @field_validator("allowed_domains")
    @classmethod
    def _domains(cls, values: list[str]) -> list[str]:
        for value in values:
            problem = wire.egress_domain_problem(value)
            if problem:
                raise ValueError(problem)
        return [value.lower() for value in values]


class CircuitBreakerSection(_Strict):
    """Per-upstream breaker: consecutive failures that open it, and for how long."""

    failure_threshold: int = Field(default=wire.BREAKER_FAILURES, gt=0)
    open_duration_secs: float = Field(default=float(wire.BREAKER_OPEN_SECS), gt=0)


class ExternalRoute(_Strict):
    """A public path pattern (`/items/{id}`) mapped to a module."""

    path: str
    methods: list[str] = []
    module: str
    namespace: str

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        problem = wire.route_path_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("methods")
    @classmethod
    def _methods(cls, values: list[str]) -> list[str]:
        for value in values:
            problem = wire.method_problem(value)
            if problem:
                raise ValueError(problem)
        return [value.upper() for value in values]

    @field_validator("module")
    @classmethod
    def _module(cls, value: str) -> str:
        return check_name(value, "module")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        return check_name(value, "namespace")


class ExternalSection(_Strict):
    """The public ingress listener and its routes."""

    listen_address: Annotated[str, Field(default=f"0.0.0.0:{wire.INGRESS_PORT}")]
    route: list[ExternalRoute] = []

    @field_validator("listen_address")
    @classmethod
    def _listen(cls, value: str) -> str:
        return _host_port(value)

    @model_validator(mode="after")
    def _no_conflicts(self) -> ExternalSection:
        seen: dict[tuple[str, ...], str] = {}
        for route in self.route:
            shape = wire.route_shape(route.path)
            if shape in seen:
                raise ValueError(f"route {route.path!r} conflicts with {seen[shape]!r}")
            seen[shape] = route.path
        return self


class TracingSection(_Strict):
    """OpenTelemetry export; sample_ratio applies to requests that arrive without a trace."""

    endpoint: str | None = None
    sample_ratio: float = Field(default=0.01, ge=0.0, le=1.0)


class ProxyConfig(_Strict):
    """Everything wr-proxy reads from proxy.toml."""

    listen_address: str = f"127.0.0.1:{wire.PROXY_DATA_PORT}"
    control_address: str = f"127.0.0.1:{wire.PROXY_CONTROL_PORT}"
    admin_address: str = f"127.0.0.1:{wire.PROXY_ADMIN_PORT}"
    manager_address: str = f"127.0.0.1:{wire.MANAGER_PORT}"
    # Several managers (active-active on one PostgreSQL): the proxy uses one at a time and
    # moves to the next when it stops answering. Set this or manager_address, not both.
    manager_addresses: list[str] = []
    request_timeout_secs: float = Field(default=float(wire.REQUEST_TIMEOUT_SECS), gt=0)
    header_timeout_secs: float = Field(default=float(wire.HEADER_TIMEOUT_SECS), gt=0)
    client_idle_timeout_secs: float = Field(default=float(wire.IDLE_TIMEOUT_SECS), gt=0)
    node: NodeSection
    cache: CacheSection = CacheSection()
    egress: EgressSection = EgressSection()
    circuit_breaker: CircuitBreakerSection = CircuitBreakerSection()
    external: ExternalSection | None = None
    tracing: TracingSection = TracingSection()

    @field_validator("listen_address", "control_address")
    @classmethod
    def _loopback(cls, value: str) -> str:
        return _loopback_address(value)

    @field_validator("admin_address")
    @classmethod
    def _admin(cls, value: str) -> str:
        return _host_port(value)

    @field_validator("manager_address")
    @classmethod
    def _manager(cls, value: str) -> str:
        return _manager_address(value)

    @field_validator("manager_addresses")
    @classmethod
    def _managers(cls, value: list[str]) -> list[str]:
        addresses = [_manager_address(v) for v in value]
        if len(set(addresses)) != len(addresses):
            raise ValueError("each manager address once")
        return addresses

    @model_validator(mode="after")
    def _one_manager_key(self) -> ProxyConfig:
        if self.manager_addresses and "manager_address" in self.model_fields_set:
            raise ValueError("set manager_addresses or manager_address, not both")
        return self

    @property
    def managers(self) -> list[str]:
        """The manager addresses to use, in order."""
        return self.manager_addresses or [self.manager_address]


def _manager_address(value: str) -> str:
    bare = value.split("://", 1)[1] if "://" in value else value
    _host_port(bare.rstrip("/"))
    return bare.rstrip("/")


def load_proxy_config(path: str | Path) -> ProxyConfig:
    """Read and validate proxy.toml; raises runtime.tomlconfig.ConfigError naming file and key."""
    return load_config(path, ProxyConfig)

"""The wire contract manager, proxy, engine, wrctl and the guest SDK share, in one place.

Header names, the module key, capability names, reserved paths, public route rules and the
limits that more than one side enforces. Standard library only and cheap to import (wrctl
reads it at start-up). Names and versions are checked by runtime/names.py. A guest cannot
import the runtime, so sdk/wr_sdk/_wire.py copies the few values it needs; a unit test keeps
the copy equal to this module.
"""

from __future__ import annotations

import re
from typing import Final, Literal, get_args

# ---- headers: lower case, as HTTP/1.1 parsers hand them over ---------------------------------
INTERNAL_HEADER_PREFIX: Final = "x-wr-"  # public ingress strips every header with this prefix
DESTINATION_HEADER: Final = "x-wr-destination"  # the call's URL: http://{namespace}.{module}/...
SOURCE_HEADER: Final = "x-wr-source"  # the calling module (attribution only)
SOURCE_NS_HEADER: Final = "x-wr-source-ns"  # the calling module's namespace
VERSION_HEADER: Final = "x-wr-version"  # a semver requirement; on delivery the resolved version
MODULE_HEADER: Final = "x-wr-module"  # set by the proxy on delivery: which module to run
NAMESPACE_HEADER: Final = "x-wr-namespace"  # set by the proxy on delivery: its namespace
# set by an engine on its guests' outbound calls: its engine id. A request that comes back
# to the same engine is part of a chain whose callers hold that engine's threads.
CALLER_ENGINE_HEADER: Final = "x-wr-caller-engine"
VIA_PROXY_HEADER: Final = "x-wr-via-proxy"  # the nodes a request passed through (loop guard)
PROXY_ERROR_HEADER: Final = "x-wr-proxy-error"  # on answers the proxy made itself: its node
EXTERNAL_SOURCE: Final = "external"  # the source of requests that came in by public ingress
JOB_ID_HEADER: Final = "x-wr-job-id"  # on a job attempt: the job it runs
JOB_ATTEMPT_HEADER: Final = "x-wr-job-attempt"  # on a job attempt: 1 for the first


# ---- module identity -------------------------------------------------------------------------
def module_host(namespace: str, name: str) -> str:
    """`namespace.name`: the host of a module's URLs, and how an engine keys its modules."""
    return f"{namespace}.{name}"


def module_key(namespace: str, name: str, version: str) -> str:
    """`namespace.name@version`: one version of a module, in release records and digest maps."""
    return f"{namespace}.{name}@{version}"


def split_module_key(key: str) -> tuple[str, str, str]:
    """(namespace, name, version) of a module key; ValueError when it has no such shape."""
    host, at, version = key.partition("@")
    namespace, dot, name = host.partition(".")
    if not (at and dot and namespace and name and version):
        raise ValueError(f"{key!r} is not a module key like namespace.name@1.0.0")
    return namespace, name, version


# ---- host capabilities a module may be granted (each is the WIT package wruntime:{name}) -----
Capability = Literal["db", "blobstore", "tracing", "llm"]
CAPABILITIES: Final[tuple[Capability, ...]] = get_args(Capability)

# ---- components: the first bytes of every WebAssembly component binary ------------------------
# "\0asm", then version 0x0d and layer 1 (a core module has version 1, layer 0)
COMPONENT_HEADER: Final = b"\x00asm\x0d\x00\x01\x00"
CORE_MODULE_HEADER: Final = b"\x00asm\x01\x00\x00\x00"

# ---- paths -----------------------------------------------------------------------------------
RESERVED_PATH_PREFIX: Final = "/__"  # module paths the runtime owns; never public routes
HEALTH_PATH: Final = "/__health"  # engines probe every module here (the SDK answers 200)
# A job attempt arrives as POST JOB_PATH_PREFIX + job type, the payload as its body. Under the
# reserved prefix, so no public route can reach it.
JOB_PATH_PREFIX: Final = "/__job/"
# Guests submit jobs and read their status through the proxy at http://JOBS_HOST/submit and
# /status/<job id>: a single-label host, so it can never be a module (namespace.module).
JOBS_HOST: Final = "wr-jobs"
GUEST_IO_DIR: Final = "/wr-io"  # where a guest finds the files of its outbound bodies
# Outbound bodies up to this size cross the guest boundary inline as list<u8> (both ways);
# larger ones are files in GUEST_IO_DIR. Below it a file hand-off (four WASI file operations
# in the guest, two on the host) costs more than the list's conversion (measured crossover:
# bench/results/engine-breakdown.md).
INLINE_BODY_MAX: Final = 16 * 1024
# How the engine's error text to a guest starts when it refused to send an outbound call as
# built (bad URL, method, header or body file): wr_sdk raises InvalidCallError for it.
INVALID_CALL_PREFIX: Final = "invalid request: "
METRICS_PATH: Final = "/metrics"  # Prometheus, on every service's admin listener and engines
ADMIN_HEALTH_PATH: Final = "/healthz"  # liveness of a service's admin listener

# ---- default ports (each configurable); the listeners bind loopback unless said otherwise ----
MANAGER_PORT: Final = 9000  # gRPC ManagerService
MANAGER_ADMIN_PORT: Final = 9090
PROXY_DATA_PORT: Final = 9001  # engines send their outbound calls here
PROXY_CONTROL_PORT: Final = 9002  # gRPC NodeService: engines register and heartbeat here
PROXY_ADMIN_PORT: Final = 9091
PEER_PORT: Final = 9443  # cross-node mutual TLS between proxies (binds every interface)
INGRESS_PORT: Final = 8080  # public ingress (binds every interface)
ENGINE_PORT: Final = 9100  # the first engine of a node; each further one takes the next port

# ---- limits and defaults that more than one side applies -------------------------------------
MAX_HEADER_BYTES: Final = 64 * 1024  # a request's line and headers; 414 (URL) or 431
# A request's line and headers must arrive whole within this after its first byte (else 408),
# so a client trickling a head cannot hold a connection; engines send theirs in microseconds.
HEADER_TIMEOUT_SECS: Final = 10
IDLE_TIMEOUT_SECS: Final = 75  # a keep-alive connection with no request for this long is closed
# Deadline of a request, by default: the engine's per module, the proxy's to response headers.
# The proxy's is the one a caller meets first, so a module's above it never takes effect.
REQUEST_TIMEOUT_SECS: Final = 30
MEMORY_LIMIT_MB: Final = 256  # a module's default memory limit
MAX_MEMORY_LIMIT_MB: Final = 4096
# A module's max_body_mb (default, highest allowed): the most bytes any one body of it may hold,
# the request's, the response's, or an outbound call's either way.
BODY_LIMIT_MB: Final = 64
MAX_BODY_LIMIT_MB: Final = 1024
BREAKER_FAILURES: Final = 5  # consecutive failures that open an upstream's circuit breaker
BREAKER_OPEN_SECS: Final = 30  # how long it stays open
HEARTBEAT_SECS: Final = 3  # engines heartbeat this often...
HEARTBEAT_TIMEOUT_SECS: Final = 30  # ...and the manager marks them unhealthy after this long

# ---- public (external ingress) routes: what the proxy accepts at load and wrctl validates ----
_ROUTE_PARAM = re.compile(r"\{[A-Za-z_]\w*\}")
_METHOD_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# What a request path may hold (RFC 3986 pchar, '/' and the {param} braces); anything else,
# a space or a control character, could never arrive in a request line.
_ROUTE_PATH = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@%/{}]*")


def route_path_problem(path: str) -> str | None:
    """Why path cannot be a public route pattern (`/items/{id}`), or None when it can."""
    if not path.startswith("/"):
        return f"{path!r} must start with '/'"
    if not _ROUTE_PATH.fullmatch(path):
        return f"{path!r}: only URL path characters may appear (no spaces or control characters)"
    if path.startswith(RESERVED_PATH_PREFIX):
        return f"{path!r}: paths under {RESERVED_PATH_PREFIX} are reserved for the runtime"
    for segment in path.split("/")[1:]:
        if ("{" in segment or "}" in segment) and not _ROUTE_PARAM.fullmatch(segment):
            return f"{path!r}: a parameter must be a whole segment like {{id}}"
    return None


_JOB_TYPE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def job_type_problem(job_type: str) -> str | None:
    """Why job_type cannot name a job type (it becomes a path segment), or None when it can."""
    if not _JOB_TYPE.fullmatch(job_type):
        return (
            f"{job_type!r} is not a job type: 1-100 letters, digits, '.', '_' or '-',"
            " starting with a letter or digit"
        )
    return None


def method_problem(method: str) -> str | None:
    """Why method is not an HTTP method token, or None when it is one."""
    return None if _METHOD_TOKEN.fullmatch(method) else f"{method!r} is not an HTTP method token"


# ---- egress allowlist: non-cluster hosts a guest may call -------------------------------------
_DOMAIN_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def egress_domain_problem(entry: str) -> str | None:
    """Why entry is not an allowlist entry (a host name, or `*.domain` matching one more
    label; any case), or None when it is one. A URL or a bare `*` is refused."""
    name = entry.lower()
    bare = name[2:] if name.startswith("*.") else name
    if bare and all(_DOMAIN_LABEL.fullmatch(label) for label in bare.split(".")):
        return None
    return f"{entry!r} is not a domain name or '*.domain' (e.g. api.example.com)"


def route_segments(path: str) -> list[str]:
    """The segments a public path is matched by: `/a/b/` -> [a, b], `/` -> []."""
    bare = path.strip("/")
    return bare.split("/") if bare else []


def route_shape(path: str) -> tuple[str, ...]:
    """What a route pattern matches: two patterns of the same shape match the same requests."""
    return tuple("{}" if s.startswith("{") else s for s in route_segments(path))

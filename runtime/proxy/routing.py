"""The routing index built from the manager's table: (namespace, module) -> healthy candidates."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

import semver

from runtime import wire
from runtime.api import wruntime_pb2 as pb
from runtime.proxy.breaker import CLOSED, BreakerKey, BreakerRegistry, CircuitBreaker
from runtime.proxy.versions import InvalidRequirement, Requirement, parse_requirement

_REQ_CACHE_LIMIT = 256
# What delivery adds: the resolved module, namespace and version.
_ROUTE_HEADERS = b"".join(
    name.encode() + b": %s\r\n"
    for name in (wire.MODULE_HEADER, wire.NAMESPACE_HEADER, wire.VERSION_HEADER)
)


class RouteError(Exception):
    """A request that cannot be routed: carries the HTTP status, the reason, extra headers."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


PLAIN = 0
PEER_TLS = 1  # mutual TLS with the cluster CA
PUBLIC_TLS = 2  # TLS verified against the system trust store (egress)


class Upstream:
    """A concrete forwarding address: an engine, a peer proxy (mutual TLS) or an egress host."""

    __slots__ = ("address", "host", "key", "port", "tls")

    def __init__(self, address: str, public_tls: bool = False) -> None:
        parts = urlsplit(address if "://" in address else f"http://{address}")
        if parts.hostname is None or parts.scheme not in {"http", "https"}:
            raise ValueError(f"{address!r} is not an http(s)://host:port address")
        self.address = address
        self.host = parts.hostname
        https = parts.scheme == "https"
        self.port = parts.port or (443 if https else 80)
        self.tls = PLAIN if not https else PUBLIC_TLS if public_tls else PEER_TLS
        self.key = (self.host, self.port, self.tls)


class Candidate:
    """One healthy routing rule: where it forwards and the breaker of its module version
    there."""

    __slots__ = (
        "breaker",
        "local",
        "module",
        "namespace",
        "route_headers",
        "rule_id",
        "upstream",
        "version",
    )

    def __init__(
        self,
        rule_id: str,
        namespace: str,
        module: str,
        version: str,
        upstream: Upstream,
        breaker: CircuitBreaker,
        local: bool,
    ) -> None:
        self.rule_id = rule_id
        self.namespace = namespace
        self.module = module
        self.version = version
        self.route_headers = (
            _ROUTE_HEADERS % (module.encode(), namespace.encode(), version.encode())
            if module
            else b""
        )
        self.upstream = upstream
        self.breaker = breaker
        self.local = local


class CandidateGroup:
    """Candidates that are equally good for a request, taken round-robin."""

    __slots__ = ("_next", "candidates")

    def __init__(self, candidates: list[Candidate]) -> None:
        self.candidates = candidates
        self._next = 0

    def choose(self, tried: list[Candidate] | None = None) -> Candidate | None:
        """The next candidate whose breaker lets a request through and that was not tried."""
        candidates = self.candidates
        count = len(candidates)
        start = self._next
        self._next = start + 1
        if tried is None:  # the usual case, kept to a few operations
            candidate = candidates[start % count]
            if candidate.breaker.state == CLOSED:
                return candidate
        for offset in range(count):
            candidate = candidates[(start + offset) % count]
            if tried and candidate in tried:
                continue
            if candidate.breaker.allow():
                return candidate
        return None

    def retry_after(self) -> int:
        return min(c.breaker.retry_after() for c in self.candidates)


class _ModuleRoutes:
    """The healthy candidates of one module, by version, with per-requirement groups cached."""

    def __init__(self, label: str, candidates: list[Candidate]) -> None:
        self.label = label
        by_version: dict[str, list[Candidate]] = {}
        for candidate in candidates:
            by_version.setdefault(candidate.version, []).append(candidate)
        self.versions = sorted(
            ((semver.Version.parse(v), group) for v, group in by_version.items()),
            key=lambda item: item[0],
            reverse=True,
        )
        self._groups: dict[tuple[str | None, bool], CandidateGroup | None] = {}

    def group(self, requirement: str | None, local_only: bool) -> CandidateGroup | None:
        key = (requirement, local_only)
        try:
            return self._groups[key]
        except KeyError:
            pass
        parsed = parse_requirement(requirement) if requirement is not None else None
        group = self._build(parsed, local_only)
        if len(self._groups) >= _REQ_CACHE_LIMIT:
            self._groups.clear()
        self._groups[key] = group
        return group

    def _build(self, requirement: Requirement | None, local_only: bool) -> CandidateGroup | None:
        chosen: list[Candidate] = []
        for version, group in self.versions:
            members = [c for c in group if c.local] if local_only else group
            if not members:
                continue
            if requirement is None:
                chosen.extend(members)
            elif requirement.matches(version):
                chosen = list(members)  # highest matching version wins
                break
        return CandidateGroup(chosen) if chosen else None


class RoutingIndex:
    """An immutable view of one routing-table version, fit for one dict lookup per request."""

    def __init__(
        self,
        table: pb.RoutingTable | None,
        own_peer_address: str,
        breakers: BreakerRegistry,
    ) -> None:
        self.version = table.version if table is not None else 0
        self.rule_count = len(table.rules) if table is not None else 0
        self.known: set[tuple[str, str]] = set()
        self.invalid_rules: list[str] = []
        self.breaker_keys: set[BreakerKey] = set()  # of every rule, healthy or not
        own = own_peer_address.rstrip("/").lower()
        healthy: dict[tuple[str, str], list[Candidate]] = {}
        for rule in table.rules if table is not None else ():
            key = (rule.destination_namespace, rule.destination_module)
            self.known.add(key)
            local = not rule.peer_address or rule.peer_address.rstrip("/").lower() == own
            address = rule.engine_address if local else rule.peer_address
            label = wire.module_host(*key)
            self.breaker_keys.add((label, rule.destination_version, address))
            if not rule.healthy:
                continue
            try:
                semver.Version.parse(rule.destination_version)
                upstream = Upstream(address)
            except ValueError:
                self.invalid_rules.append(rule.rule_id)
                continue
            breaker = breakers.get(label, rule.destination_version, upstream.address)
            healthy.setdefault(key, []).append(
                Candidate(
                    rule.rule_id,
                    rule.destination_namespace,
                    rule.destination_module,
                    rule.destination_version,
                    upstream,
                    breaker,
                    local,
                )
            )
        self._modules = {
            key: _ModuleRoutes(wire.module_host(*key), sorted(cands, key=lambda c: c.rule_id))
            for key, cands in healthy.items()
        }

    def resolve(
        self, namespace: str, module: str, requirement: str | None, local_only: bool = False
    ) -> CandidateGroup:
        """The group to pick from; RouteError for unknown module, bad requirement, none healthy."""
        routes = self._modules.get((namespace, module))
        if routes is None:
            if (namespace, module) in self.known:
                raise RouteError(503, f"no healthy instance of {namespace}.{module}")
            raise RouteError(404, f"unknown module {namespace}.{module}")
        try:
            group = routes.group(requirement, local_only)
        except InvalidRequirement as exc:
            raise RouteError(400, str(exc)) from None
        if group is None:
            where = " on this node" if local_only else ""
            wanted = f" matching {requirement!r}" if requirement is not None else ""
            raise RouteError(503, f"no healthy instance of {namespace}.{module}{wanted}{where}")
        return group

    def modules(self) -> Iterable[str]:
        return (routes.label for routes in self._modules.values())

"""External ingress routes: public path patterns (`/items/{id}`) mapped to cluster modules."""

from __future__ import annotations

from dataclasses import dataclass

from runtime.proxy.config import ExternalRoute
from runtime.wire import route_segments


@dataclass(frozen=True)
class IngressMatch:
    """Where a public request goes, or why it goes nowhere (status 404 or 405)."""

    route: ExternalRoute | None
    status: int = 200
    reason: str = ""
    allow: str = ""


class _Pattern:
    __slots__ = ("params", "route", "segments")

    def __init__(self, route: ExternalRoute) -> None:
        self.route = route
        self.segments = route_segments(route.path)
        self.params = sum(1 for s in self.segments if s.startswith("{"))

    def matches(self, segments: list[str]) -> bool:
        if len(segments) != len(self.segments):
            return False
        return all(
            want.startswith("{") or want == got
            for want, got in zip(self.segments, segments, strict=True)
        )


class IngressRouter:
    """Matches (method, path); static segments win over parameters, as in matchit."""

    def __init__(self, routes: list[ExternalRoute]) -> None:
        self._patterns = sorted((_Pattern(r) for r in routes), key=lambda p: p.params)

    def match(self, method: str, path: str) -> IngressMatch:
        bare = path.split("?", 1)[0]
        inner = bare.strip("/")  # route_segments, inlined: this runs per public request
        segments = inner.split("/") if inner else []
        allowed: list[str] = []
        for pattern in self._patterns:
            if not pattern.matches(segments):
                continue
            methods = pattern.route.methods
            if not methods or method in methods:
                return IngressMatch(pattern.route)
            allowed.extend(methods)
        if allowed:
            allow = ", ".join(sorted(set(allowed)))
            return IngressMatch(None, 405, f"{method} is not allowed on {bare}", allow)
        return IngressMatch(None, 404, f"no public route for {bare}")

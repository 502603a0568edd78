"""The egress allowlist: which non-cluster hosts guests may call."""

from __future__ import annotations


class EgressPolicy:
    """Exact host names, and `*.domain` patterns that match exactly one extra label."""

    def __init__(self, allowed_domains: list[str]) -> None:
        self._exact = {d for d in allowed_domains if not d.startswith("*.")}
        self._suffixes = {d[1:] for d in allowed_domains if d.startswith("*.")}  # ".domain"

    @property
    def enabled(self) -> bool:
        return bool(self._exact or self._suffixes)

    def allows(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if host in self._exact:
            return True
        dot = host.find(".")
        return dot > 0 and host[dot:] in self._suffixes

    def refusal(self, host: str) -> str:
        if not self.enabled:
            return f"egress to {host} refused: no [egress] allowed_domains are configured"
        return f"egress to {host} refused: not in [egress] allowed_domains"

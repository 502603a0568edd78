"""Circuit breakers per module version and upstream: closed -> open after N consecutive
failures -> half-open probe."""

# Keyed by (destination, version, upstream address), not by the address alone: engines run
# many modules, and one module failing must not take the others on its engine down with it.

from __future__ import annotations

import math
import time
from collections.abc import Callable

from runtime.wire import module_key

CLOSED = 0
OPEN = 1
HALF_OPEN = 2
STATE_NAMES = {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half_open"}

# (destination label: "namespace.module" or "egress:host", module version or "", address)
BreakerKey = tuple[str, str, str]
StateListener = Callable[[BreakerKey, int], None]


def _ignore(key: BreakerKey, state: int) -> None:
    """The listener of a breaker its registry dropped: its state is no longer reported."""


class CircuitBreaker:
    """One module version's breaker on one upstream. `allow()` is called per request, so it is
    a couple of compares."""

    __slots__ = (
        "_listener",
        "failures",
        "key",
        "open_duration",
        "opened_at",
        "probe_in_flight",
        "state",
        "threshold",
    )

    def __init__(
        self, key: BreakerKey, threshold: int, open_duration: float, listener: StateListener
    ) -> None:
        self.key = key
        self.threshold = threshold
        self.open_duration = open_duration
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probe_in_flight = False
        self._listener = listener

    def _set(self, state: int) -> None:
        self.state = state
        self._listener(self.key, state)

    def allow(self) -> bool:
        """May a request go to this upstream now? Moves open -> half-open when the time is up."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if time.monotonic() - self.opened_at < self.open_duration:
                return False
            self._set(HALF_OPEN)
        if self.probe_in_flight:
            return False
        self.probe_in_flight = True
        return True

    def retry_after(self) -> int:
        """Whole seconds until this breaker lets a probe through (at least 1)."""
        left = self.open_duration - (time.monotonic() - self.opened_at)
        return max(1, math.ceil(left))

    def success(self) -> None:
        self.failures = 0
        if self.state != CLOSED:
            self.probe_in_flight = False
            self._set(CLOSED)

    def failure(self) -> None:
        self.failures += 1
        if self.state == HALF_OPEN or (self.state == CLOSED and self.failures >= self.threshold):
            self.probe_in_flight = False
            self.opened_at = time.monotonic()
            self._set(OPEN)

    def release_probe(self) -> None:
        """The probe ended without a verdict (e.g. the client went away): let another one try."""
        self.probe_in_flight = False

    def detach(self) -> None:
        """Stop reporting state changes (the registry dropped this breaker; requests in flight
        may still hold it)."""
        self._listener = _ignore


class BreakerRegistry:
    """Breakers by (destination, version, address), kept across routing-table updates while
    their rule stays in the table."""

    def __init__(self, threshold: int, open_duration: float, listener: StateListener) -> None:
        self._threshold = threshold
        self._open_duration = open_duration
        self._listener = listener
        self._breakers: dict[BreakerKey, CircuitBreaker] = {}

    def get(self, destination: str, version: str, address: str) -> CircuitBreaker:
        key = (destination, version, address)
        breaker = self._breakers.get(key)
        if breaker is None:
            breaker = CircuitBreaker(key, self._threshold, self._open_duration, self._listener)
            self._breakers[key] = breaker
            self._listener(key, CLOSED)
        return breaker

    def retain(self, keep: set[BreakerKey], forget: Callable[[BreakerKey], None]) -> None:
        """Drop the module breakers not in keep (rules gone from the routing table), telling
        forget about each; egress breakers (no version) stay."""
        for key in [k for k in self._breakers if k[1] and k not in keep]:
            self._breakers.pop(key).detach()
            forget(key)

    def states(self) -> dict[str, dict[str, str]]:
        """{upstream address: {"namespace.module@version" or "egress:host": state}}."""
        out: dict[str, dict[str, str]] = {}
        for (destination, version, address), breaker in sorted(self._breakers.items()):
            namespace, _, module = destination.partition(".")
            name = module_key(namespace, module, version) if version else destination
            out.setdefault(address, {})[name] = STATE_NAMES[breaker.state]
        return out

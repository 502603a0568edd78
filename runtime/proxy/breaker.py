"""Per-upstream circuit breakers: closed -> open after N consecutive failures -> half-open probe."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

CLOSED = 0
OPEN = 1
HALF_OPEN = 2
STATE_NAMES = {CLOSED: "closed", OPEN: "open", HALF_OPEN: "half_open"}

StateListener = Callable[[str, int], None]


class CircuitBreaker:
    """One upstream's breaker. `allow()` is called per request, so it is a couple of compares."""

    __slots__ = (
        "_listener",
        "address",
        "failures",
        "open_duration",
        "opened_at",
        "probe_in_flight",
        "state",
        "threshold",
    )

    def __init__(
        self, address: str, threshold: int, open_duration: float, listener: StateListener
    ) -> None:
        self.address = address
        self.threshold = threshold
        self.open_duration = open_duration
        self.state = CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.probe_in_flight = False
        self._listener = listener

    def _set(self, state: int) -> None:
        self.state = state
        self._listener(self.address, state)

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


class BreakerRegistry:
    """Breakers keyed by the concrete forwarding address, kept across routing-table updates."""

    def __init__(self, threshold: int, open_duration: float, listener: StateListener) -> None:
        self._threshold = threshold
        self._open_duration = open_duration
        self._listener = listener
        self._breakers: dict[str, CircuitBreaker] = {}

    def get(self, address: str) -> CircuitBreaker:
        breaker = self._breakers.get(address)
        if breaker is None:
            breaker = CircuitBreaker(address, self._threshold, self._open_duration, self._listener)
            self._breakers[address] = breaker
            self._listener(address, CLOSED)
        return breaker

    def states(self) -> dict[str, str]:
        return {address: STATE_NAMES[b.state] for address, b in self._breakers.items()}

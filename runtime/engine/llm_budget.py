"""Per-module LLM token budgets: tokens (input + output, as the provider's usage reports
them) a module may use in any sliding minute.

Kept in each worker process, with the engine's budget split evenly over its workers (a
worker allows ceil(budget / workers)): the workers share no memory, and this way the engine
as a whole never goes over the module's budget without a round trip to the front per call.
The price: a module whose calls all land on one worker gets only that worker's share.
A call is refused (before it is made) while the minute's usage has reached the share; a call
let through may overshoot it by its own usage, which is only known after it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

WINDOW_SECS = 60.0


class TokenBudget:
    """One module's share in this worker."""

    def __init__(self, tokens_per_minute: int, workers: int) -> None:
        self.share = max(1, math.ceil(tokens_per_minute / max(1, workers)))
        self._used: deque[tuple[float, int]] = deque()  # (when, tokens), oldest first
        self._total = 0
        self._lock = threading.Lock()

    def _expire(self, now: float) -> None:
        while self._used and self._used[0][0] <= now - WINDOW_SECS:
            self._total -= self._used.popleft()[1]

    def wait_secs(self, now: float | None = None) -> int:
        """0 when a call may go now, else whole seconds until the minute has room again."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._expire(now)
            if self._total < self.share:
                return 0
            total = self._total
            for when, tokens in self._used:
                total -= tokens
                if total < self.share:
                    return max(1, math.ceil(when + WINDOW_SECS - now))
            return 1  # unreachable: the loop empties the window

    def spend(self, tokens: int, now: float | None = None) -> None:
        if tokens <= 0:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            self._expire(now)
            self._used.append((now, tokens))
            self._total += tokens

    @property
    def used(self) -> int:
        with self._lock:
            self._expire(time.monotonic())
            return self._total

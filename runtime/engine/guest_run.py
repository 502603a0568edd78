"""One request's run in a guest: its deadline and quotas, checked on every epoch tick and once
more when the guest returns, and the hooks that tell the worker it parked or runs long.

Quotas (a module's max_body_mb is B): the response body (stdout) at most B; `/wr-io` and
stderr together at most 2 B (room for an outbound body the guest is writing and the last
reply); at most MAX_IO_ENTRIES files, directories and links in `/wr-io`. A guest over its
quota is stopped at the next tick, so it can overshoot by what it writes in 10 ms.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from runtime.engine.guest_log import GuestLog
from runtime.engine.outbound import CallContext
from runtime.engine.scratch import Slot
from runtime.engine.spec import ModuleSpec
from runtime.wire import GUEST_IO_DIR, MAX_HEADER_BYTES

MAX_IO_ENTRIES = 1000
# A request that has run this long (guest time since it started or last resumed) is "long":
# its worker stops reading on its thread and tells the front, which may then place a
# request of another module there (see scheduler.py).
LONG_RUN_SECS = 0.02


class GuestRun:
    """The state host imports and the watchdog read while one request's guest runs."""

    def __init__(
        self,
        spec: ModuleSpec,
        slot: Slot,
        traceparent: str | None,
        on_park: Callable[[bool], None],
        on_long: Callable[[], None],
        time_left: float | None = None,
    ) -> None:
        self.spec = spec
        self.slot = slot
        self.max_body = spec.max_body_bytes
        self.io_quota = 2 * spec.max_body_bytes
        budget = spec.timeout_secs if time_left is None else min(spec.timeout_secs, time_left)
        deadline = time.monotonic() + budget
        self.call = CallContext(
            spec.name, spec.namespace, traceparent, deadline, slot.io, self.max_body, self.io_room
        )
        self.log = GuestLog(spec, self.call.trace_id)
        self._on_park = on_park
        self._on_long = on_long
        self._since = time.monotonic()
        self._long = False
        self.stopped: tuple[int, str] | None = None  # why the watchdog stopped the guest

    def tick(self) -> str | None:
        """The watchdog's check: None to go on, else why the guest is stopped."""
        now = time.monotonic()
        if now >= self.call.deadline:
            self.stopped = (504, self.deadline_message())
        elif problem := self.quota_problem():
            self.stopped = (500, problem)
        elif not self._long and now - self._since >= LONG_RUN_SECS:
            self._long = True
            self._on_long()
        return self.stopped[1] if self.stopped else None

    def park(self, parked: bool) -> None:
        """The guest waits in (False: is back from) an outbound call."""
        self._on_park(parked)
        if not parked:
            self._since = time.monotonic()
            self._long = False

    def deadline_message(self) -> str:
        return f"module {self.spec.key}: deadline of {self.spec.timeout_secs:g} s exceeded"

    def quota_problem(self) -> str | None:
        used = self.slot.usage(self.io_quota, MAX_IO_ENTRIES)
        key, mib = self.spec.key, self.max_body >> 20
        if used.stdout > self.max_body:
            return f"module {key}: response body over its limit of {mib} MiB (max_body_mb)"
        if used.other > self.io_quota:
            return (
                f"module {key}: wrote over {2 * mib} MiB to {GUEST_IO_DIR} and stderr "
                "(twice its max_body_mb)"
            )
        if used.entries > MAX_IO_ENTRIES:
            return f"module {key}: made over {MAX_IO_ENTRIES} files in {GUEST_IO_DIR}"
        return None

    def io_room(self) -> int:
        """Bytes /wr-io may still take (an outbound reply is refused past that)."""
        return self.io_quota - self.slot.usage(self.io_quota, MAX_IO_ENTRIES).other

    def response_problem(
        self, status: int, headers: list[tuple[str, str]]
    ) -> tuple[int, str] | None:
        """Why the guest's answer cannot go out as it is: (status to answer, reason)."""
        key = self.spec.key
        if not 200 <= status <= 599:
            return 502, f"module {key} answered with status {status}, outside 200-599"
        size = sum(len(k) + len(v) for k, v in headers)
        if size > MAX_HEADER_BYTES:
            return 500, f"module {key}: response headers of {size} bytes, over {MAX_HEADER_BYTES}"
        problem = self.quota_problem()
        return (500, problem) if problem else None

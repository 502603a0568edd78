"""What a guest says, logged under its name: `log.write` calls and its stderr (print() in a
wr_sdk guest), each record tagged with module, version and trace id, within a budget per
request so a guest cannot flood the engine's log."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from runtime.engine.spec import ModuleSpec

log = logging.getLogger("wr-engine.guest")

LOG_BUDGET_BYTES = 64 * 1024  # per request, log.write and stderr together
_RECORD_COST = 64  # counted per record on top of its text: many empty lines also add up
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


class GuestLog:
    """The log of one request's guest."""

    def __init__(self, spec: ModuleSpec, trace_id: Callable[[], str]) -> None:
        self._spec = spec
        self._trace_id = trace_id
        self._left = LOG_BUDGET_BYTES
        self._dropped = 0

    def write(self, level: int, message: str, stream: str = "log") -> None:
        """Log one record, cut to what is left of the budget (nothing once it is spent)."""
        room = self._left - _RECORD_COST
        if room <= 0:
            self._dropped += len(message)
            return
        if len(message) > room:
            self._dropped += len(message) - room
            message = message[:room]
        self._left -= len(message) + _RECORD_COST
        log.log(level, message, extra=self._extra(stream))

    def flush_stderr(self, path: Path) -> None:
        """Log what the guest wrote to stderr (a file in its scratch slot), line by line."""
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            return
        if size == 0:
            return
        with open(path, "r+b") as f:
            text = f.read(min(size, self._left))
            f.truncate(0)  # logged once, whatever happens to the slot's next request
        self._dropped += size - len(text)
        for line in text.decode("utf-8", "replace").splitlines():
            self.write(logging.INFO, line, "stderr")

    def close(self) -> None:
        """Say how much was left out, once, at the end of the request."""
        if self._dropped:
            log.warning(
                f"guest log budget of {LOG_BUDGET_BYTES} bytes per request spent: "
                f"{self._dropped} bytes not logged",
                extra=self._extra("engine"),
            )

    def _extra(self, stream: str) -> dict[str, str]:
        return {
            "wr_module": self._spec.key,
            "version": self._spec.version,
            "trace_id": self._trace_id(),
            "stream": stream,
        }

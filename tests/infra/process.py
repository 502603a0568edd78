"""Real processes for tests: free ports, polling with deadlines, and a managed child process."""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import signal
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import pytest

from tests.infra import _stale

T = TypeVar("T")

POLL_INTERVAL_S = 0.02


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for the local ports of outgoing connections (Linux default)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def _port_candidates() -> Iterator[int]:
    """This process's own walk over the ports below the ephemeral range. Each pytest-xdist
    worker gets a disjoint slice, and starts at a random place in it (other runs on the
    machine), so two workers never hand out the same port and one worker never repeats one."""
    low, high = 10000, _ephemeral_range()[0]
    if high - low < 1000:  # an unusual ephemeral range: no room below it
        low, high = 10000, 32768
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker) if worker.isdigit() else 0
    size = (high - low) // max(workers, 1)
    start = low + (index % max(workers, 1)) * size
    offset = random.SystemRandom().randrange(size)  # pytest-randomly reseeds `random`
    for i in range(size):
        yield start + (offset + i) % size


_candidates: Iterator[int] | None = None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on host right now, for a server the test starts soon after.

    Not one the kernel picks: those come from the ephemeral range, where any outgoing
    connection (another worker's, or this test's own clients) may take the port before the
    server binds it. These come from below that range, and no two workers share one."""
    global _candidates
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(500):
        if _candidates is None:
            _candidates = _port_candidates()
        port = next(_candidates, None)
        if port is None:  # a whole slice handed out: walk it again
            _candidates = None
            continue
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue  # in use (or in TIME_WAIT) right now
            return port
    raise RuntimeError(f"no free TCP port found on {host} below the ephemeral range")


class StopWaiting(Exception):
    """Raised by a wait_until predicate to give up at once (e.g. the process died)."""


def wait_until(
    predicate: Callable[[], T | None],
    deadline_s: float,
    what: str,
    interval_s: float = POLL_INTERVAL_S,
) -> T:
    """Poll predicate until it returns something truthy and return that value.

    Raises TimeoutError naming `what` (and the last exception the predicate raised, if any)
    when deadline_s seconds pass first.
    """
    deadline = time.monotonic() + deadline_s
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except StopWaiting:
            raise
        except Exception as exc:  # the predicate may fail until the thing is ready
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise TimeoutError(f"timed out after {deadline_s:g}s waiting for {what}{detail}")
        time.sleep(interval_s)


def port_is_open(host: str, port: int) -> bool:
    """True when a TCP connection to host:port succeeds now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, deadline_s: float) -> None:
    """Wait until host:port accepts TCP connections."""
    wait_until(lambda: port_is_open(host, port), deadline_s, f"{host}:{port} to accept connections")


def _split_http_url(url: str) -> urllib.parse.SplitResult:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise ValueError(f"readiness url {url!r}: expected http://HOST:PORT/PATH")
    return parts


def http_status(url: str, timeout_s: float = 1.0) -> int:
    """The status of a GET on url (plain HTTP only; no proxies, no redirects followed)."""
    parts = _split_http_url(url)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout_s)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("GET", target)
        return conn.getresponse().status
    finally:
        conn.close()


class ProcessNotReady(StopWaiting):
    """A managed process exited or missed its readiness deadline; the message has its log."""


class ManagedProcess:
    """A child process owned by a test: output goes to a log file, stop() always ends it.

    The child gets its own session (process group) so stop() also ends anything it spawned,
    and is recorded next to its log so a later run can end it if this one crashes (_stale.py).
    `env` holds variables set on top of the current environment; `user` runs the child as that
    account (needs root); `stop_signal` is what stop() sends first (PostgreSQL wants SIGINT).
    """

    def __init__(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        name: str | None = None,
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.env = dict(env or {})
        self.cwd = cwd
        self.name = name or Path(self.argv[0]).name
        self.user = user
        self.stop_signal = stop_signal
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        if self._proc is not None:
            raise RuntimeError(f"{self.name} was already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,
                user=self.user,
            )
        _stale.record_process(self.log_path, self._proc.pid)
        return self

    @property
    def pid(self) -> int:
        return self._require().pid

    @property
    def returncode(self) -> int | None:
        """None while running, else the exit code (negative: killed by that signal)."""
        proc = self._require()
        return proc.returncode if proc.returncode is not None else self._peek_exit()

    @property
    def running(self) -> bool:
        return self._proc is not None and self.returncode is None

    def log_tail(self, n: int = 40) -> str:
        """The last n lines of the process's combined stdout/stderr."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(lines[-n:])

    def wait_ready(
        self, target: int | str, deadline_s: float = 30.0, host: str = "127.0.0.1"
    ) -> None:
        """Wait until the process listens on port `target` (an int, on host) or answers a
        GET on `target` (an http:// URL) with 2xx. Fails at once if the process exits."""
        if isinstance(target, int):
            what = f"{self.name} to listen on {host}:{target}"

            def ready() -> bool:
                return port_is_open(host, target)
        else:
            _split_http_url(target)  # a malformed URL is an error now, not after the deadline
            what = f"{self.name} to answer 2xx on {target}"

            def ready() -> bool:
                return 200 <= http_status(target) < 300

        def ready_or_dead() -> bool:
            if not self.running:
                raise ProcessNotReady(self._failure(f"exited with {self.returncode}", what))
            return ready()

        try:
            wait_until(ready_or_dead, deadline_s, what)
        except ProcessNotReady:
            raise
        except TimeoutError as exc:
            raise ProcessNotReady(self._failure(str(exc), what)) from None

    def stop(self, grace_s: float = 5.0) -> int | None:
        """Send stop_signal (SIGTERM) to the process group, SIGKILL after grace_s; return the
        exit code."""
        proc = self._proc
        if proc is None or proc.returncode is not None:  # never started, or already stopped
            return None if proc is None else proc.returncode
        if self._peek_exit() is None:
            self._signal_group(self.stop_signal)
            deadline = time.monotonic() + grace_s
            while self._peek_exit() is None and time.monotonic() < deadline:
                time.sleep(POLL_INTERVAL_S)
        # The leader is not reaped yet, so its PID (= the group id) cannot have been reused:
        # this reaches only what we started, including children left in the group.
        self._signal_group(signal.SIGKILL)
        return proc.wait(timeout=max(grace_s, 5.0))

    def __enter__(self) -> ManagedProcess:
        return self if self._proc is not None else self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _peek_exit(self) -> int | None:
        """The exit code if the child has exited, without reaping it (so its PID stays ours)."""
        proc = self._require()
        try:
            status = os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped behind our back (someone called os.wait())
            return proc.poll()
        if status is None:
            return None
        return status.si_status if status.si_code == os.CLD_EXITED else -status.si_status

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._require().pid, sig)

    def _failure(self, reason: str, what: str) -> str:
        return (
            f"{self.name} (pid {self.pid}, {' '.join(self.argv)}) not ready: {reason}; "
            f"was waiting for {what}.\n--- last lines of {self.log_path} ---\n{self.log_tail()}"
        )

    def _require(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._proc


def cache_dir() -> Path:
    """$WRUNTIME_CACHE or ~/.cache/wruntime, created: where slow artifacts are kept by hash."""
    root = Path(os.environ.get("WRUNTIME_CACHE") or Path.home() / ".cache" / "wruntime")
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="session")
def wruntime_cache() -> Iterator[Path]:
    """The artifact cache directory (content-hash keyed entries are the caller's business)."""
    yield cache_dir()

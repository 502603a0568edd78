"""What apply, rollback and destroy share: one manager client for the run, the apply lock,
opening a target's host, the health gate, and release records."""

from __future__ import annotations

import getpass
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

from runtime.api import wruntime_pb2 as pb
from wrctl.config.targets import HostTarget, NodeTarget, Targets
from wrctl.credentials import resolve_credentials
from wrctl.deploy.hosts import open_host
from wrctl.deploy.noderollout import NodeGate
from wrctl.deploy.rollout import Rollout
from wrctl.deploy.transport import Progress
from wrctl.errors import WrctlError
from wrctl.managerapi import ManagerClient

Report = Callable[[str, str], None]  # (target, message)
UploadBar = Callable[[str, int], Progress]  # (target, total bytes) -> progress callback


@dataclass(frozen=True)
class ApplyOptions:
    health_timeout_s: float = 60.0
    parallel: int = 1  # nodes rolled out at the same time
    upload_bar: UploadBar | None = None


@dataclass
class TargetResult:
    target: str
    status: str  # "applied" | "removed" | "failed" | "rolled-back" | "skipped"
    detail: str = ""
    logs: str = ""  # the failing services' last log lines


class ApplyFailed(WrctlError):
    """A target failed; earlier targets stay applied, later ones untouched."""

    def __init__(self, message: str, results: list[TargetResult]) -> None:
        super().__init__(message)
        self.results = results


def applied_by() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


@dataclass
class Session:
    """One apply, rollback or destroy against the manager `targets` resolve to."""

    targets: Targets
    client: ManagerClient
    report: Report
    options: ApplyOptions
    lock_id: str = ""
    cancel: threading.Event = field(default_factory=threading.Event)

    @contextmanager
    def locked(self, reason: str) -> Iterator[None]:
        """Hold the manager's apply lock for the block (LockHeldError if someone has it)."""
        with self.client.apply_lock(reason) as lock:
            self.lock_id = lock.lock_id
            try:
                yield
            finally:
                self.lock_id = ""

    def open(self, place: HostTarget) -> Rollout:
        """A rollout on the target's host; the caller closes `rollout.host.transport`."""
        return Rollout(open_host(place), place.name)

    def gate(self, rollout: Rollout, node: NodeTarget) -> NodeGate:
        return NodeGate(
            rollout,
            self.client,
            node.name,
            node.ports.admin,
            node.place.python,
            self.options.health_timeout_s,
            self.report,
            self.cancel,
        )

    def record(self, release: pb.ReleaseRecord) -> None:
        """Add a release to the manager's history (under the lock), signed by this user."""
        release.applied_by = applied_by()
        self.client.record(release, self.lock_id)

    def record_failure(self, release: pb.ReleaseRecord) -> None:
        """Keep a failed attempt in the history; it does not replace what runs. The history
        is a courtesy here: the failure itself is reported to the user either way."""
        release.status = "failed"
        with suppress(WrctlError):
            self.record(release)


@contextmanager
def open_session(
    targets: Targets, report: Report, options: ApplyOptions | None = None
) -> Iterator[Session]:
    client = ManagerClient(targets.manager.endpoints, resolve_credentials(targets.config))
    try:
        yield Session(targets, client, report, options or ApplyOptions())
    finally:
        client.close()

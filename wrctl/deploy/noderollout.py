"""A node's way onto a release and back: restart its services behind the health gate, and
return it to the release it ran before when the gate fails. Apply and rollback share it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from wrctl.deploy.healthgate import engine_ids, wait_healthy, wait_proxy_synced
from wrctl.deploy.rollout import Rollout
from wrctl.errors import WrctlError
from wrctl.managerapi import ManagerClient

Report = Callable[[str, str], None]  # (target, message)


@dataclass(frozen=True)
class Expectation:
    """What the health gate waits for on a node: that many engines serving these digests."""

    engines: int
    modules: dict[str, str]  # "ns.name@version" -> "sha256:..."


@dataclass
class NodeGate:
    rollout: Rollout
    client: ManagerClient
    node: str
    admin_port: int
    python: str
    timeout_s: float
    report: Report
    cancel: threading.Event | None = None  # set: stop waiting (KeyboardInterrupt)

    def restart_and_wait(self, expected: Expectation) -> str:
        """Restart the node's services; wait until new engines serve `expected` and the node's
        proxy routes with the manager's current table. HealthGateFailed otherwise."""
        before = engine_ids(self.client, self.node)
        self.rollout.restart()
        self.report(self.rollout.target, "restarted; waiting for the health gate")
        gate = wait_healthy(
            self.client,
            self.node,
            expected.engines,
            expected.modules,
            self.timeout_s,
            stale=before,
            cancel=self.cancel,
        )
        wait_proxy_synced(
            self.rollout.host.transport,
            self.python,
            self.admin_port,
            self.client.routing_version(),
            10.0,
            cancel=self.cancel,
        )
        return gate.detail

    def return_to(self, previous: str | None, expected: Expectation | None) -> str:
        """After a failed switch: point `current` back at `previous` and restart it (or stop
        the node's services when there was none). Says what happened, for the summary."""
        target = self.rollout.target
        self.rollout.switch(previous)
        if not previous or expected is None:
            self.rollout.host.format.remove(target)
            self.report(target, "stopped (there is no previous release)")
            return "stopped; there was no previous release"
        try:
            self.restart_and_wait(expected)
        except WrctlError as again:
            self.report(target, f"back on {previous[:12]}, but it is unhealthy too: {again}")
            return f"back on release {previous[:12]}, which is unhealthy: {again}"
        self.report(target, f"back on the previous release {previous[:12]}, which is healthy")
        return f"back on release {previous[:12]} (healthy)"

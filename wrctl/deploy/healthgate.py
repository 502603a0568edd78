"""The health gate: a node's release is live when the manager sees its engines healthy
and serving the expected module digests."""

from __future__ import annotations

import time
from dataclasses import dataclass

from runtime.names import module_key
from wrctl.errors import WrctlError
from wrctl.managerapi import ManagerClient


class HealthGateFailed(WrctlError):
    """The node did not become healthy with the expected modules in time."""


@dataclass(frozen=True)
class GateReport:
    ok: bool
    detail: str


def check_node(
    client: ManagerClient, node: str, engines: int, modules: dict[str, str]
) -> GateReport:
    """One look at the manager: are `engines` engines of node healthy, serving every module
    key in `modules` at its digest?"""
    state = client.state()
    live = [n for n in state.nodes if n.name == node]
    statuses = [e for n in live for e in n.engines if e.healthy]
    if len(statuses) < engines:
        return GateReport(False, f"{len(statuses)} of {engines} engines registered and healthy")
    serving: dict[str, str] = {}
    for status in statuses:
        for health in status.modules:
            m = health.module
            if health.healthy:
                serving[module_key(m.namespace, m.name, m.version)] = m.digest
    for key, digest in sorted(modules.items()):
        if key not in serving:
            return GateReport(False, f"module {key} is not reported healthy")
        if serving[key] != digest:
            return GateReport(
                False, f"module {key} runs {serving[key][:19]}, expected {digest[:19]}"
            )
    return GateReport(True, f"{len(statuses)} engines healthy, {len(modules)} modules")


def wait_healthy(
    client: ManagerClient, node: str, engines: int, modules: dict[str, str], timeout_s: float
) -> GateReport:
    deadline = time.monotonic() + timeout_s
    report = GateReport(False, "not checked yet")
    while time.monotonic() < deadline:
        try:
            report = check_node(client, node, engines, modules)
        except WrctlError as exc:
            report = GateReport(False, str(exc))
        if report.ok:
            return report
        time.sleep(0.25)  # poll interval of a deadline-bounded wait
    raise HealthGateFailed(
        f"node {node} failed its health gate after {timeout_s:.0f}s: {report.detail}"
    )

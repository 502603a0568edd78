"""The health gate: a node's release is live when the manager sees its new engines healthy
and serving the expected module digests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from runtime.wire import ADMIN_HEALTH_PATH, module_key
from wrctl.deploy.transport import Transport
from wrctl.errors import WrctlError
from wrctl.managerapi import ManagerClient

_PROXY_VERSION = (
    "import json, urllib.request; "
    f"print(json.load(urllib.request.urlopen('http://127.0.0.1:{{port}}{ADMIN_HEALTH_PATH}', "
    "timeout=2))"
    "['routing_table_version'])"
)


class HealthGateFailed(WrctlError):
    """The node did not become healthy with the expected modules in time."""


@dataclass(frozen=True)
class GateReport:
    ok: bool
    detail: str


def _pause(seconds: float, cancel: threading.Event | None) -> None:
    """The poll interval of a deadline-bounded wait; KeyboardInterrupt once `cancel` is set
    (how a rollout running in a worker thread learns that the user pressed Ctrl-C)."""
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise KeyboardInterrupt


def engine_ids(client: ManagerClient, node: str) -> frozenset[str]:
    """Ids of the engines the manager lists for node right now."""
    return frozenset(
        e.registration.engine_id for n in client.state().nodes if n.name == node for e in n.engines
    )


def check_node(
    client: ManagerClient,
    node: str,
    engines: int,
    modules: dict[str, str],
    stale: frozenset[str] = frozenset(),
) -> GateReport:
    """One look at the manager: are `engines` engines of node, none of them in `stale` (those
    from before the restart), healthy and serving every module key in `modules` at its digest?

    Excluding the old engines matters: one that failed to deregister still looks healthy for
    a while, with the same digests when only the config changed."""
    state = client.state()
    fresh = [
        e
        for n in state.nodes
        if n.name == node
        for e in n.engines
        if e.healthy and e.registration.engine_id not in stale
    ]
    if len(fresh) < engines:
        return GateReport(False, f"{len(fresh)} of {engines} new engines registered and healthy")
    serving: dict[str, str] = {}
    for status in fresh:
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
    return GateReport(True, f"{len(fresh)} engines healthy, {len(modules)} modules")


def wait_healthy(
    client: ManagerClient,
    node: str,
    engines: int,
    modules: dict[str, str],
    timeout_s: float,
    stale: frozenset[str] = frozenset(),
    cancel: threading.Event | None = None,
) -> GateReport:
    """Poll check_node until it passes; HealthGateFailed with the last reason at the deadline."""
    deadline = time.monotonic() + timeout_s
    report = GateReport(False, "not checked yet")
    while time.monotonic() < deadline:
        try:
            report = check_node(client, node, engines, modules, stale)
        except WrctlError as exc:
            report = GateReport(False, str(exc))
        if report.ok:
            return report
        _pause(0.25, cancel)
    raise HealthGateFailed(
        f"node {node} failed its health gate after {timeout_s:.0f}s: {report.detail}"
    )


def wait_proxy_synced(
    transport: Transport,
    python: str,
    admin_port: int,
    version: int,
    timeout_s: float,
    cancel: threading.Event | None = None,
) -> None:
    """Wait until the node's proxy routes with the manager's table `version` or newer, so
    traffic right after the gate reaches the new engines. Asked on the host itself: the
    proxy's admin port listens on the host's loopback."""
    deadline = time.monotonic() + timeout_s
    seen = "no answer"
    command = f'{python} -c "{_PROXY_VERSION.format(port=admin_port)}"'
    while time.monotonic() < deadline:
        result = transport.run(command, check=False)
        answer = result.stdout.strip()
        if result.ok and answer.isdigit():
            if int(answer) >= version:
                return
            seen = f"version {answer}"
        else:
            seen = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        _pause(0.1, cancel)
    raise HealthGateFailed(
        f"the node proxy did not load routing table version {version} within "
        f"{timeout_s:.0f}s (it reports {seen})"
    )

"""E2e step: a routing rule written behind wrctl's back shows as drift in `wrctl plan`, and
`wrctl apply` removes it. Called from a local-cycle test on a cluster that apply brought up:

    check_drift(local_cluster, channel_factory)

`channel_factory(address)` opens an operator-role gRPC channel to the manager (the manager
refuses UpsertRoutingRule to anything else)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import grpc

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from tests.e2e.conftest import LocalCluster
from wrctl.plan.render import DRIFT_HEADING

ChannelFactory = Callable[[str], grpc.Channel]
RULE_ID = "behind-wrctl"


def check_drift(c: LocalCluster, channel_factory: ChannelFactory) -> None:
    address = f"127.0.0.1:{c.manager_port}"
    with channel_factory(address) as channel:
        stub = pb_grpc.ManagerServiceStub(channel)
        stub.UpsertRoutingRule(
            pb.RoutingRule(
                rule_id=RULE_ID,
                destination_namespace="example",
                destination_module="echo",
                destination_version="1.0.0",
                engine_id="impostor",
                engine_address="http://127.0.0.1:9",
                peer_address="https://127.0.0.1:9",
            ),
            timeout=10,
        )

        plan = c.wrctl("plan", "--detailed-exitcode")
        assert plan.returncode == 2, _output(plan)
        drifted = _drift_lines(plan.stdout)
        assert any(
            line.startswith(f"! routing_rule.{RULE_ID}: written outside") for line in drifted
        ), _output(plan)
        assert "Drift: 1 to converge." in plan.stdout, _output(plan)

        applied = c.wrctl("apply", "--auto-approve")
        assert applied.returncode == 0, _output(applied)
        assert f"routing rule {RULE_ID} deleted" in _output(applied)

        again = c.wrctl("plan", "--detailed-exitcode")
        assert again.returncode == 0, _output(again)
        assert "No changes." in again.stdout and DRIFT_HEADING not in again.stdout
        state = stub.GetClusterState(pb.GetClusterStateRequest(), timeout=10)
        assert [r.rule_id for r in state.explicit_rules] == []
        table = stub.GetRoutingTable(pb.GetRoutingTableRequest(), timeout=10).table
        assert RULE_ID not in [r.rule_id for r in table.rules]


def _drift_lines(text: str) -> list[str]:
    """The item lines under the drift heading (up to the first blank line after them)."""
    lines = text.splitlines()
    assert DRIFT_HEADING in lines, f"no drift heading in:\n{text}"
    items = []
    for line in lines[lines.index(DRIFT_HEADING) + 2 :]:
        if not line.strip():
            break
        items.append(line.strip())
    return items


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"

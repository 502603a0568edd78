"""Converge drift during apply: nodes where a placed module is missing or unhealthy are
redeployed in place through the ordinary node rollout (so behind the health gate); after the
rollouts, under the apply lock, explicit routing rules are deleted and engines serving modules
their node's release does not place there are deregistered."""

from __future__ import annotations

from wrctl.config.targets import target_name
from wrctl.deploy.session import Report, Session, TargetResult
from wrctl.errors import WrctlError
from wrctl.plan import Plan
from wrctl.plan.drift import Drift, DriftKind, find_drift


def restart_nodes(plan: Plan) -> dict[str, list[str]]:
    """Node -> why it is restarted, for every node whose drift a restart converges."""
    nodes: dict[str, list[str]] = {}
    for item in plan.drift:
        if item.converge == "restart":
            nodes.setdefault(item.node, []).append(item.detail)
    return nodes


def announce_restarts(plan: Plan, rolled_out: list[str], report: Report) -> None:
    """Say why a node is redeployed although its bundle did not change."""
    for node, why in restart_nodes(plan).items():
        if node in rolled_out:
            report(
                target_name(f"node.{node}"), f"redeploying in place to converge: {'; '.join(why)}"
            )


def converge(plan: Plan, session: Session) -> list[TargetResult]:
    """Delete the rules and deregister the engines that the plan showed as drift. The live
    state is read again first: a node rollout of this apply may have settled an item (its new
    release places what the engine serves), and drift the plan did not show is left alone."""
    wanted = [d for d in plan.drift if d.converge in ("delete", "deregister")]
    if not wanted:
        return []
    still = {d.address for d in find_drift(session.client.state())}
    return [_one(item, item.address in still, session) for item in wanted]


def _one(item: Drift, drifted: bool, session: Session) -> TargetResult:
    if not drifted:
        session.report(item.address, "no longer differs; left as it is")
        return TargetResult(item.address, "converged", "no longer differed by then")
    try:
        if item.kind is DriftKind.EXPLICIT_RULE:
            session.client.delete_rule(item.ref)
            done = f"routing rule {item.ref} deleted"
        else:
            session.client.deregister_engine(item.ref)
            done = f"engine {item.ref} of {item.node} deregistered"
    except WrctlError as exc:
        session.report(item.address, f"could not converge: {exc}")
        return TargetResult(item.address, "failed", f"{item.detail}: {exc}")
    session.report(item.address, done)
    return TargetResult(item.address, "converged", done)

"""`wrctl apply` and `wrctl destroy`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from wrctl.commands.options import (
    AcceptNewHostKey,
    AllowOtherCluster,
    AutoApprove,
    ClusterFile,
    HealthTimeout,
    KnownHosts,
    Manager,
    overrides,
)

if TYPE_CHECKING:
    from wrctl.config import Overrides
    from wrctl.plan import Plan


def apply(
    target: Annotated[Path, typer.Argument(help="cluster.toml, or a plan saved with -out.")] = Path(
        "cluster.toml"
    ),
    auto_approve: AutoApprove = False,
    health_timeout: HealthTimeout = 60.0,
    parallel: Annotated[
        int, typer.Option(min=1, max=64, help="Nodes rolled out at the same time.")
    ] = 1,
    accept_new_host_key: AcceptNewHostKey = False,
    known_hosts: KnownHosts = None,
    manager: Manager = None,
    allow_other_cluster: AllowOtherCluster = False,
) -> None:
    """Converge the cluster: show the plan, confirm, then deploy manager and nodes."""
    from wrctl.commands.exits import abort
    from wrctl.console import (
        confirm,
        out,
        print_failure,
        print_plan,
        print_results,
        step_reporter,
        upload_bars,
    )
    from wrctl.deploy.apply import ApplyFailed, ApplyOptions, apply_plan
    from wrctl.plan import render_text

    given = overrides(manager, known_hosts, accept_new_host_key, allow_other_cluster)
    made, reviewed = _plan(target, given)
    if not made.changes:
        out.print("No changes. The cluster matches the configuration.")
        return
    print_plan(render_text(made.actions, made.drift))
    if not (auto_approve or reviewed) and not confirm("Apply these changes?"):
        abort("Apply cancelled.")
    try:
        with upload_bars() as bar:
            options = ApplyOptions(health_timeout, parallel, bar)
            results = apply_plan(made, step_reporter(), options)
    except ApplyFailed as exc:
        print_failure(exc.results)
        raise
    print_results(results, out)
    out.print("[bold green]Apply complete.[/bold green]")


def _plan(target: Path, given: Overrides) -> tuple[Plan, bool]:
    """The plan to apply, and whether it was reviewed already (a saved plan, still current)."""
    from wrctl.config import load_targets
    from wrctl.observe import observe_live
    from wrctl.plan import make_plan
    from wrctl.plan.planfile import is_plan_file, load

    if not is_plan_file(target):
        targets = load_targets(target, given)
        return make_plan(targets, observe_live(targets)), False
    saved = load(target)
    targets = load_targets(saved.config_path, given)
    made = make_plan(targets, observe_live(targets))
    saved.check_current(target, made)
    return made, True


def destroy(
    cluster: ClusterFile = Path("cluster.toml"),
    auto_approve: AutoApprove = False,
    accept_new_host_key: AcceptNewHostKey = False,
    known_hosts: KnownHosts = None,
    manager: Manager = None,
    allow_other_cluster: AllowOtherCluster = False,
) -> None:
    """Remove everything apply created: node services, the manager and its state."""
    from wrctl.commands.exits import abort
    from wrctl.config import load_targets
    from wrctl.console import confirm, out, print_plan, step_reporter
    from wrctl.deploy.apply import destroy_cluster
    from wrctl.observe import forget_applied, observe_live
    from wrctl.plan import ClusterState, diff, make_plan, render_text

    given = overrides(manager, known_hosts, accept_new_host_key, allow_other_cluster)
    targets = load_targets(cluster, given)
    # destroy leaves the database alone (data outlives the cluster): no need to read it
    made = make_plan(targets, observe_live(targets, database=False))
    if not made.live.reachable:
        out.print("Nothing to destroy: the manager is not running.")
        return
    print_plan(render_text(diff(ClusterState(resources={}), made.live)))
    if not auto_approve and not confirm("Destroy everything listed above?"):
        abort("Destroy cancelled.")
    destroy_cluster(made, step_reporter())
    forget_applied(targets)
    out.print(f"[bold]Destroy complete.[/bold] {json.dumps(made.config.cluster.name)} is gone.")

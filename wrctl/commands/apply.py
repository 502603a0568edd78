"""`wrctl apply` and `wrctl destroy`."""

from __future__ import annotations

import json
from pathlib import Path

from wrctl.config import load_cluster
from wrctl.console import (
    abort,
    confirm,
    out,
    print_failure,
    print_plan,
    print_results,
    step_reporter,
    upload_bars,
)
from wrctl.deploy.apply import ApplyFailed, ApplyOptions, apply_plan, destroy_cluster
from wrctl.deploy.hosts import HostAccess
from wrctl.errors import StalePlanError
from wrctl.plan import ClusterState, diff, forget_applied, make_plan, render_text
from wrctl.plan.planfile import load


def _is_plan_file(path: Path) -> bool:
    """A saved plan is JSON naming itself; cluster.toml never starts with `{`."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.lstrip().startswith(b"{") and b"wrctl-plan" in head


def run_apply(
    target: Path,
    auto_approve: bool,
    health_timeout: float,
    parallel: int = 1,
    access: HostAccess | None = None,
) -> None:
    if _is_plan_file(target):
        saved = load(target)
        config = load_cluster(saved.config_path)
        plan = make_plan(config)
        if plan.config_digest != saved.config_digest:
            raise StalePlanError(
                f"{target}: {saved.config_path} or a file it names changed since this plan was "
                "made; run wrctl plan again"
            )
        if plan.live.serial != saved.serial or plan.live.reachable != saved.manager_reachable:
            raise StalePlanError(
                f"{target}: the live cluster changed since this plan was made (state serial "
                f"{saved.serial} -> {plan.live.serial}); run wrctl plan again"
            )
        auto_approve = True  # a saved plan was already reviewed
    else:
        config = load_cluster(target)
        plan = make_plan(config)
    if not plan.actions:
        out.print("No changes. The cluster matches the configuration.")
        return
    print_plan(render_text(plan.actions))
    if not auto_approve and not confirm("Apply these changes?"):
        abort("Apply cancelled.")
    try:
        with upload_bars() as bar:
            options = ApplyOptions(health_timeout, parallel, access or HostAccess(), bar)
            results = apply_plan(plan, step_reporter(), options)
    except ApplyFailed as exc:
        print_failure(exc.results)
        raise
    print_results(results, out)
    out.print("[bold green]Apply complete.[/bold green]")


def run_destroy(cluster: Path, auto_approve: bool, access: HostAccess | None = None) -> None:
    config = load_cluster(cluster)
    plan = make_plan(config)
    actions = diff(ClusterState(resources={}), plan.live)
    if not plan.live.reachable:
        out.print("Nothing to destroy: the manager is not running.")
        return
    print_plan(render_text(actions))
    if not auto_approve and not confirm("Destroy everything listed above?"):
        abort("Destroy cancelled.")
    destroy_cluster(config, plan, step_reporter(), access)
    forget_applied(config)
    out.print(f"[bold]Destroy complete.[/bold] {json.dumps(config.cluster.name)} is gone.")

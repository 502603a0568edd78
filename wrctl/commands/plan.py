"""`wrctl plan`."""

from __future__ import annotations

from pathlib import Path

from wrctl.config import load_cluster
from wrctl.console import err, out, print_json, print_plan
from wrctl.plan import make_plan, render_json, render_text
from wrctl.plan.planfile import save


def run_plan(cluster: Path, json_out: bool, out_file: Path | None) -> bool:
    """Print the plan (and save it); True when it has changes."""
    config = load_cluster(cluster)
    plan = make_plan(config)
    if json_out:
        print_json(render_json(plan.actions, plan.live.serial, config.cluster.name))
    else:
        if not plan.live.reachable:
            err.print("[dim]The manager is not running yet: everything is to be created.[/dim]")
        print_plan(render_text(plan.actions))
    if out_file is not None:
        save(plan.saved(), out_file)
        if not json_out:
            out.print(f"\nSaved the plan to {out_file}; apply it with: wrctl apply {out_file}")
    return bool(plan.actions)

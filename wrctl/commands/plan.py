"""`wrctl plan`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from wrctl.commands.exits import EXIT_CHANGES
from wrctl.commands.options import AllowOtherCluster, ClusterFile, Manager, overrides


def plan(
    cluster: ClusterFile = Path("cluster.toml"),
    json_out: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    out_file: Annotated[
        Path | None, typer.Option("-out", "--out", help="Save the plan for `wrctl apply FILE`.")
    ] = None,
    detailed_exitcode: Annotated[
        bool,
        typer.Option(
            "--detailed-exitcode",
            help="Exit 2 when there are changes or live state drifted from the recorded release.",
        ),
    ] = False,
    manager: Manager = None,
    allow_other_cluster: AllowOtherCluster = False,
) -> None:
    """Show what apply would change: cluster.toml against the live cluster."""
    from wrctl.config import load_targets
    from wrctl.console import err, out, print_json, print_plan
    from wrctl.observe import observe_live
    from wrctl.plan import make_plan, render_json, render_text
    from wrctl.plan.planfile import save

    targets = load_targets(cluster, overrides(manager, allow_other_cluster=allow_other_cluster))
    made = make_plan(targets, observe_live(targets))
    if json_out:
        print_json(
            render_json(made.actions, made.live.serial, made.config.cluster.name, made.drift)
        )
    else:
        if not made.live.reachable:
            err.print("[dim]The manager is not running yet: everything is to be created.[/dim]")
        print_plan(render_text(made.actions, made.drift))
    if out_file is not None:
        save(made.saved(), out_file)
        if not json_out:
            out.print(f"\nSaved the plan to {out_file}; apply it with: wrctl apply {out_file}")
    if detailed_exitcode and made.changes:
        raise typer.Exit(EXIT_CHANGES)

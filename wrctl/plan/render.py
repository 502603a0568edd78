"""Plan rendering: the Terraform-style text view and the JSON view of the same plan [pure]."""

from __future__ import annotations

import re
from collections.abc import Sequence

from wrctl.plan.diff import Action, ActionKind, Change, summary
from wrctl.plan.drift import Drift

SYMBOLS = {
    ActionKind.CREATE: "+",
    ActionKind.UPDATE: "~",
    ActionKind.REPLACE: "-/+",
    ActionKind.DESTROY: "-",
}
_LEGEND = {
    ActionKind.CREATE: "create",
    ActionKind.UPDATE: "update in place",
    ActionKind.REPLACE: "destroy and then create replacement",
    ActionKind.DESTROY: "destroy",
}
_HEADLINE = {
    ActionKind.CREATE: "will be created",
    ActionKind.UPDATE: "will be updated in place",
    ActionKind.REPLACE: "must be replaced",
    ActionKind.DESTROY: "will be destroyed",
}
_DIGEST = re.compile(r"sha256:([0-9a-f]{12})[0-9a-f]{52}")


DRIFT_HEADING = "Changed outside wrctl (the live cluster differs from the recorded release):"


def summary_line(actions: list[Action], drift: Sequence[Drift] = ()) -> str:
    if not actions and not drift:
        return "No changes. The cluster matches the configuration."
    add, change, destroy = summary(actions)
    line = f"Plan: {add} to add, {change} to change, {destroy} to destroy."
    return line + (f" Drift: {len(drift)} to converge." if drift else "")


def render_text(actions: list[Action], drift: Sequence[Drift] = ()) -> str:
    """The plan as text: drift first, under its own heading, then the actions; action lines
    start with the action symbol so a caller can colour them."""
    if not actions and not drift:
        return summary_line(actions) + "\n"
    lines = _render_drift(drift) if drift else []
    if actions:
        lines += _render_actions(actions)
    lines.append(summary_line(actions, drift))
    return "\n".join(lines) + "\n"


def _render_drift(drift: Sequence[Drift]) -> list[str]:
    lines = [DRIFT_HEADING, ""]
    lines += [f"  ! {d.address}: {d.detail}" for d in drift]
    steps = list(dict.fromkeys(d.step for d in drift))  # in order, each once
    return [*lines, "", f"wrctl apply converges them: {', '.join(steps)}.", ""]


def _render_actions(actions: list[Action]) -> list[str]:
    used = [k for k in ActionKind if any(a.kind is k for a in actions)]
    lines = ["Resource actions are indicated with the following symbols:"]
    lines += [f"  {SYMBOLS[k]:>3} {_LEGEND[k]}" for k in used]
    lines += ["", "wrctl will perform the following actions:", ""]
    for action in actions:
        lines += _render_action(action)
        lines.append("")
    return lines


def _render_action(action: Action) -> list[str]:
    why = f" ({action.reason})" if action.reason else ""
    out = [f"  # {action.address} {_HEADLINE[action.kind]}{why}"]
    out.append(f"{SYMBOLS[action.kind]:>3} {action.address} {{")
    width = max((len(c.attribute) for c in action.changes), default=0)
    for change in action.changes:
        out.append("      " + _render_change(action.kind, change, width))
    if action.unchanged and action.kind in (ActionKind.UPDATE, ActionKind.REPLACE):
        noun = "attribute" if action.unchanged == 1 else "attributes"
        out.append(f"        # ({action.unchanged} unchanged {noun} hidden)")
    out.append("    }")
    return out


def _render_change(kind: ActionKind, change: Change, width: int) -> str:
    name = change.attribute.ljust(width)
    attr = change.attribute
    if change.old is None:
        return f"+ {name} = {_value(change.new, attr)}"
    if change.new is None:
        return f"- {name} = {_value(change.old, attr)}"
    forced = " # forces replacement" if change.forces_replacement else ""
    return f"~ {name} = {_value(change.old, attr)} -> {_value(change.new, attr)}{forced}"


SENSITIVE = frozenset({"state_digest"})


def _value(value: str | None, attribute: str = "") -> str:
    if value is None:
        return "null"
    if attribute in SENSITIVE:
        return "(sensitive value)"
    if value.startswith("(secret ") or value.startswith("["):
        return _DIGEST.sub(r"sha256:\1…", value)
    return '"' + _DIGEST.sub(r"sha256:\1…", value) + '"'


def render_json(
    actions: list[Action], serial: int, cluster: str, drift: Sequence[Drift] = ()
) -> dict[str, object]:
    add, change, destroy = summary(actions)
    return {
        "format_version": 1,
        "cluster": cluster,
        "serial": serial,
        "changes": bool(actions or drift),
        "summary": {"add": add, "change": change, "destroy": destroy, "drift": len(drift)},
        "actions": [a.to_json() for a in actions],
        "drift": [d.to_json() for d in drift],
    }

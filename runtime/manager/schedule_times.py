"""When a schedule fires next: every interval_secs, or at the times of a cron expression (UTC).

Shared by the manager (firing) and wrctl (validating cluster.toml), so both read a cron
expression the same way.
"""

from __future__ import annotations

import datetime

from croniter import croniter  # type: ignore[import-untyped]


def cron_problem(expression: str) -> str | None:
    """Why expression is not a five-field cron expression, or None when it is one."""
    if len(expression.split()) != 5:
        return (
            f"{expression!r} is not a cron expression of five fields"
            " (minute hour day-of-month month day-of-week)"
        )
    if not croniter.is_valid(expression):
        return f"{expression!r} is not a valid cron expression"
    return None


def next_fire(interval_secs: int, cron: str, after: float, first: bool = False) -> float:
    """The fire time after `after` (epoch seconds). An interval schedule's first fire is
    `after` itself (at once); a cron schedule always waits for its next matching time."""
    if not cron:
        return after if first else after + interval_secs
    start = datetime.datetime.fromtimestamp(after, datetime.UTC)
    return float(croniter(cron, start).get_next(float))

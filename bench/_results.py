"""Shared by the benchmarks: the machine description, the results table and the JSON file
(format in DESIGN.md section 8)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    unit: str
    target: float | None = None
    better: str = "lower"  # "lower" | "higher"

    def met(self) -> bool | None:
        if self.target is None:
            return None
        return self.value <= self.target if self.better == "lower" else self.value >= self.target


def machine() -> dict[str, object]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.release()} {platform.machine()}",
        "executable": sys.executable,
    }


def print_table(title: str, metrics: list[Metric]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("metric", "value", "unit", "target", "met"):
        table.add_column(column, justify="right" if column in ("value", "target") else "left")
    for m in metrics:
        met = m.met()
        table.add_row(
            m.name,
            f"{m.value:.4g}",
            m.unit,
            "-" if m.target is None else f"{'<=' if m.better == 'lower' else '>='} {m.target:g}",
            "-" if met is None else ("yes" if met else "NO"),
        )
    Console().print(table)


def save(name: str, metrics: list[Metric], extra: dict[str, object] | None = None) -> Path:
    data = {
        "bench": name,
        "when": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "metrics": {
            m.name: {"value": m.value, "unit": m.unit, "target": m.target, "better": m.better}
            for m in metrics
        },
        **(extra or {}),
    }
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)
    return path


def metric(
    value: float, unit: str, target: float | None = None, better: str = "lower"
) -> dict[str, object]:
    """One metric as a dict (the form bench/engine.py builds its table in)."""
    return {"value": value, "unit": unit, "target": target, "better": better}


def write_results(bench: str, metrics: dict[str, dict[str, object]]) -> Path:
    """Save and print metrics given as {name: metric(...)}; return the results path."""
    rows = [
        Metric(
            name,
            float(m["value"]),  # type: ignore[arg-type]
            str(m["unit"]),
            None if m["target"] is None else float(m["target"]),  # type: ignore[arg-type]
            str(m["better"]),
        )
        for name, m in metrics.items()
    ]
    print_table(bench, rows)
    return save(bench, rows)

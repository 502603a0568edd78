"""The benchmark results file every bench/<name>.py writes (DESIGN.md section 8), and its table."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Literal

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def metric(
    value: float,
    unit: str,
    target: float | None = None,
    better: Literal["lower", "higher"] = "lower",
) -> dict[str, Any]:
    return {"value": value, "unit": unit, "target": target, "better": better}


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }


def meets(m: dict[str, Any]) -> str:
    if m["target"] is None:
        return ""
    ok = m["value"] <= m["target"] if m["better"] == "lower" else m["value"] >= m["target"]
    return "yes" if ok else "NO"


def write_results(bench: str, metrics: dict[str, dict[str, Any]]) -> Path:
    """Write bench/results/<bench>.json atomically and print the table; return the path."""
    doc = {
        "bench": bench,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "metrics": metrics,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{bench}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)
    print_table(metrics)
    return path


def print_table(metrics: dict[str, dict[str, Any]]) -> None:
    width = max(len(k) for k in metrics)
    print(f"{'metric':<{width}}  {'value':>12}  {'unit':<8}  {'target':>10}  met")
    for name, m in metrics.items():
        sign = "<=" if m["better"] == "lower" else ">="
        target = "" if m["target"] is None else f"{sign}{m['target']:g}"
        print(f"{name:<{width}}  {m['value']:>12.3f}  {m['unit']:<8}  {target:>10}  {meets(m)}")

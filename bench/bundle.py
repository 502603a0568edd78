"""bench/bundle.py: `wrctl bundle` time and size for the echo example and for 100 modules
(the echo component under 100 names), with a cold wheel cache (PyPI downloads and the
runtime wheel build) against a warm one.

    python bench/bundle.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._results import Metric, print_table, save
from runtime.version import __version__
from wrctl.build.cached import build_cached
from wrctl.bundle.build import Bundle, BundleOptions, build_bundles
from wrctl.bundle.wheels import default_target
from wrctl.bundle.wheelset import collect_wheels
from wrctl.config import load_targets

REPO = Path(__file__).resolve().parent.parent
ECHO = REPO / "examples" / "echo"


def _cluster(root: Path, echo: Path, modules: int) -> Path:
    lines = ['[cluster]\nname = "bench"\n', '[manager]\nhost = "local"\n']
    lines.append('[[node]]\nname = "a"\nhost = "local"\n')
    for i in range(modules):
        name = "echo" if modules == 1 else f"echo-{i}"
        lines.append(
            f'[[module]]\nnamespace = "example"\nname = "{name}"\nversion = "1.0.0"\n'
            f'component = "{echo}"\nschema = "{ECHO / "schemas" / "echo.proto"}"\n'
        )
    path = root / f"cluster-{modules}.toml"
    path.write_text("\n".join(lines))
    return path


def _bundle(cluster: Path, cache: Path, out: Path) -> tuple[float, list[Bundle]]:
    """One `wrctl bundle` as the CLI does it: wheels (cache or PyPI), then the tarballs."""
    start = time.perf_counter()
    wheels = collect_wheels(default_target(), cache)
    bundles = build_bundles(
        load_targets(cluster), out, __version__, options=BundleOptions(wheels=wheels)
    )
    return time.perf_counter() - start, bundles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one warm run each (< 1 min)")
    args = parser.parse_args()
    runs = 1 if args.quick else 3
    echo = build_cached(ECHO / "echo")
    metrics: list[Metric] = []
    with tempfile.TemporaryDirectory(prefix="wr-bench-bundle-") as tmp:
        root = Path(tmp)
        cache = root / "cache"  # a cold wruntime cache: nothing downloaded or built yet
        one = _cluster(root, echo, 1)
        hundred = _cluster(root, echo, 100)
        cold, _ = _bundle(one, cache, root / "cold")
        warm_times: list[float] = []
        for i in range(runs):
            seconds, bundles = _bundle(one, cache, root / f"warm-{i}")
            warm_times.append(seconds)
        warm = statistics.median(warm_times)
        node, manager = bundles[1].path.stat().st_size, bundles[0].path.stat().st_size
        many_times: list[float] = []
        for i in range(runs):
            seconds, many = _bundle(hundred, cache, root / f"many-{i}")
            many_times.append(seconds)
        many_time = statistics.median(many_times)
        many_node = many[1].path.stat().st_size
        identical = (
            bundles[1].path.read_bytes() == (root / "cold" / bundles[1].path.name).read_bytes()
        )
    metrics += [
        Metric("echo_bundle_cold_cache_s", cold, "s", 120.0),
        Metric("echo_bundle_warm_cache_s", warm, "s", 15.0),
        Metric("warm_over_cold", warm / cold, "ratio", 0.5),
        Metric("echo_node_bundle_mb", node / 1e6, "MB", 100.0),
        Metric("manager_bundle_mb", manager / 1e6, "MB", 100.0),
        Metric("modules100_bundle_warm_s", many_time, "s", 30.0),
        Metric("modules100_node_bundle_mb", many_node / 1e6, "MB", 250.0),
        Metric("modules100_over_echo_time", many_time / warm, "ratio", None),
        Metric("cold_and_warm_bundles_identical", float(identical), "bool", 1.0, "higher"),
    ]
    print_table("bundle (loaded machine unless rerun idle)", metrics)
    print(f"results: {save('bundle', metrics, {'quick': args.quick, 'runs': runs})}")


if __name__ == "__main__":
    main()

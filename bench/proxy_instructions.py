"""Instructions the proxy code executes per request (callgrind): steady on a loaded machine."""

# bench/proxy.py measures CPU time, which moves with whatever else runs on the machine; the
# instruction count of the in-memory data path (bench/_proxy_hotpath.py: the real parser,
# exchange, router, metrics and tracer, no sockets) does not. Two runs of different lengths
# under callgrind, and their difference over the extra requests, cancel start-up and imports.
# It counts instructions, not time: cache misses and the kernel are not in it.
#
#     .venv/bin/python bench/proxy_instructions.py [--quick]

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._results import Metric, print_table, save

REPO = Path(__file__).resolve().parents[1]
RUN = """
import random, sys
sys.path.insert(0, sys.argv[3])
random.seed(1)  # the same sampled requests in every run
from bench._proxy_hotpath import cost_per_request
cost_per_request(sys.argv[1] == "1", int(sys.argv[2]), 1)
"""


def instructions(tracing: bool, requests: int, work: Path) -> int:
    """Instructions of one process that sends `requests` (+ a fixed warm-up) requests."""
    out = work / f"callgrind-{int(tracing)}-{requests}.out"
    argv = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        sys.executable,
        "-c",
        RUN,
        "1" if tracing else "0",
        str(requests),
        str(REPO),
    ]
    # A fixed hash seed: dict probe sequences (and so instruction counts) repeat from run to run.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run(argv, check=True, capture_output=True, timeout=600, env=env)
    match = re.search(r"^totals: (\d+)", out.read_text(errors="replace"), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{out}: no totals line")
    return int(match.group(1))


def per_request(tracing: bool, short: int, long: int, work: Path) -> float:
    # The two runs side by side (two cores): start-up under valgrind is most of their time.
    with ThreadPoolExecutor(2) as pool:
        runs = pool.map(lambda n: instructions(tracing, n, work), (short, long))
        few, many = runs
    return (many - few) / (long - short)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tracing on only, fewer requests")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        print("valgrind is missing: run scripts/install-bench-deps.sh", file=sys.stderr)
        return 2
    short, long = (200, 1200) if args.quick else (500, 3500)
    work = Path(tempfile.mkdtemp(prefix="wr-bench-ir-"))
    try:
        metrics = [
            Metric(
                "wr_proxy_instructions_per_request",
                per_request(True, short, long, work),
                "instructions",
                None,
                "lower",
            )
        ]
        if not args.quick:
            untraced = per_request(False, short, long, work)
            metrics.append(
                Metric(
                    "wr_proxy_instructions_per_request_no_tracing",
                    untraced,
                    "instructions",
                    None,
                    "lower",
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(
        f"proxy data path, instructions per request ({'quick' if args.quick else 'full'})", metrics
    )
    settings = {"quick": args.quick, "requests": long - short, "sample_ratio": 0.01}
    path = save("proxy_instructions", metrics, {"settings": settings})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

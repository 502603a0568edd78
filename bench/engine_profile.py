"""Where the caller -> echo milliseconds go: the caller guest with a clock around each SDK step
(bench/guests/caller_profile) and the worker's steps clocked on the host (a sitecustomize only
this run's engine loads). Medians over sequential requests through the proxy, one worker.

    .venv/bin/python bench/engine_profile.py [--count 300]
    .venv/bin/python bench/engine_profile.py --crossover   # inline list<u8> vs /wr-io files
"""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._engine_stack import BenchModule, Stack, destination, start_stack  # noqa: E402
from bench.engine import build_modules  # noqa: E402

Samples = dict[str, list[float]]


def start(tmp: Path, name: str, modules: list[BenchModule], inline_max: int | None) -> Stack:
    """A stack whose engine loads the clocks (and, given inline_max, that inline threshold)."""
    env = dict(os.environ)
    os.environ["WR_PROF_OUT"] = str(tmp / f"{name}-steps")
    os.environ["PYTHONPATH"] = str(REPO / "bench/_profile_site")
    if inline_max is not None:
        os.environ["WR_INLINE_MAX"] = str(inline_max)
    try:
        # ready once echo answers: with a threshold of 0 the plain caller's calls are refused
        ready = ("echo", "/echo.EchoService/Echo")
        return start_stack(tmp / name, modules, 1, cache=tmp / "cache", ready_path=ready)
    finally:
        os.environ.clear()
        os.environ.update(env)


def run_requests(
    stack: Stack,
    tmp: Path,
    name: str,
    path: str,
    body: bytes,
    count: int,
    extra: dict[str, str],
    module: str = "profile",
) -> tuple[list[float], Samples, Samples]:
    """(client ms, guest steps, worker steps) of count requests after 20 to warm up."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.proxy_port, timeout=30)
    headers = destination(module, path) | extra
    client: list[float] = []
    guest: Samples = collections.defaultdict(list)
    for i in range(count + 20):
        if i == 20:
            for f in tmp.glob(f"{name}-steps.*"):
                f.write_text("")  # the worker appends (O_APPEND): warm-up steps dropped
        t = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{resp.status} {data[:300]!r}")
        if i >= 20:
            client.append((time.perf_counter() - t) * 1000)
            if module == "profile":
                for k, v in json.loads(data).items():
                    guest[k].append(v)
    conn.close()
    host: Samples = collections.defaultdict(list)
    for f in tmp.glob(f"{name}-steps.*"):
        for line in f.read_text().splitlines():
            label, ms = line.rsplit(" ", 1)
            host[label].append(float(ms))
        f.write_text("")
    return client, guest, host


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def profile(tmp: Path, modules: list[BenchModule], count: int) -> None:
    stack = start(tmp, "p", modules, None)
    try:
        client, guest, host = run_requests(stack, tmp, "p", "/run", b"x" * 100, count, {})
        _, twice, _ = run_requests(stack, tmp, "p", "/twice", b"", 100, {})
        body = b"\x0a\x62" + b"x" * 98  # an EchoRequest of 100 B
        direct, _, echo = run_requests(
            stack, tmp, "p", "/echo.EchoService/Echo", body, count, {}, "echo"
        )
    finally:
        stack.close()
    print(f"client p50 through the proxy: {med(client):.3f} ms")
    print("\nguest (caller_profile /run, 100 B), median ms:")
    for k, v in guest.items():
        print(f"  {k:44s} {med(v):7.3f}")
    exchange = host["profile: send: HTTP exchange"]
    outside = [g - h for g, h in zip(guest["echo.echo (all)"], exchange, strict=True)]
    print(f"  {'echo.echo above the HTTP exchange':44s} {med(outside):7.3f}")
    print("\nworker, median ms [count]:")
    for k, v in sorted(host.items()):
        print(f"  {k:44s} {med(v):7.3f} [{len(v)}]")
    print(f"\necho alone through the proxy: client p50 {med(direct):.3f} ms; worker, median ms:")
    for k, v in sorted(echo.items()):
        print(f"  {k:44s} {med(v):7.3f} [{len(v)}]")
    print("\neach step twice in one fresh instance, median ms:")
    for k, v in twice.items():
        print(f"  {k:44s} {med(v):7.3f}")


def crossover(tmp: Path, modules: list[BenchModule], count: int, rounds: int) -> None:
    """Per body size: the caller's outbound call above the HTTP exchange, with every body
    through /wr-io files (threshold 0) or every body inline (threshold 64 KiB)."""
    sizes = [100, 1024, 4096, 8192, 16384, 32768]
    above: dict[tuple[str, int], list[float]] = collections.defaultdict(list)
    for r in range(rounds):
        for mode, limit in (("files", 0), ("inline", 65536)):
            name = f"x{r}{mode}"
            stack = start(tmp, name, modules, limit)
            try:
                for size in sizes:
                    _, guest, host = run_requests(
                        stack,
                        tmp,
                        name,
                        "/run",
                        b"x" * size,
                        count,
                        {"x-bench-inline-max": str(limit)},
                    )
                    exchange = host["profile: send: HTTP exchange"]
                    pairs = zip(guest["echo.echo (all)"], exchange, strict=True)
                    above[(mode, size)].append(med([g - h for g, h in pairs]))
            finally:
                stack.close()
            print(f"round {r + 1} {mode}: done", file=sys.stderr)
    print("outbound call above the HTTP exchange, ms: median of rounds (spread)")
    print(f"{'size':>8} {'files':>16} {'inline':>16}")
    for size in sizes:
        cells = []
        for mode in ("files", "inline"):
            v = above[(mode, size)]
            cells.append(f"{med(v):7.3f} ({max(v) - min(v):.3f})")
        print(f"{size:>8} {cells[0]:>16} {cells[1]:>16}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--crossover", action="store_true")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from runtime.engine.component_cache import ComponentCache
    from wrctl.build.cached import build_cached

    modules = [m for m in build_modules() if m.name in ("echo", "caller")]
    modules.append(
        BenchModule("profile", build_cached(REPO / "bench/guests/caller_profile"), schema=True)
    )
    with tempfile.TemporaryDirectory(prefix="wr-prof-") as tmpdir:
        tmp = Path(tmpdir)
        for m in modules:
            ComponentCache(tmp / "cache").ensure(m.wasm)
        if args.crossover:
            crossover(tmp, modules, args.count, args.rounds)
        else:
            profile(tmp, modules, args.count)


if __name__ == "__main__":
    main()

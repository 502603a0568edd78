"""Benchmark wr-engine as `wrctl apply` runs it (engine.toml and proxy.toml rendered from wrctl's
templates, a real proxy, node certificates): p50, p99 and CPU per request of every process for
the WAT floor guest, raw and protobuf echo, and caller -> echo through the proxy, with 1 and 2
worker processes; throughput and engine CPU per request under load.

    .venv/bin/python bench/engine.py [--quick]
    .venv/bin/python bench/engine.py --ab ../wt-base [--rounds 3]   # interleaved A/B
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._engine_stack import BenchModule, Stack, destination, start_stack  # noqa: E402
from bench._results import metric, write_results  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
SIZES = {"100B": 100, "64KiB": 64 * 1024, "1MiB": 1024 * 1024}


def echo_body(size: int) -> bytes:
    """An EchoRequest whose encoding is about size bytes."""
    sys.path.insert(0, str(GEN))
    import echo_pb2  # type: ignore[import-not-found]

    return bytes(echo_pb2.EchoRequest(message="x" * max(0, size - 5)).SerializeToString())


GEN = Path(tempfile.mkdtemp(prefix="wr-bench-gen-"))


# -- process CPU -------------------------------------------------------------------------------


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def family(pid: int) -> list[int]:
    kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(int(k) for k in kids)]


def engine_cpu(pid: int) -> float:
    return sum(proc_cpu(p) for p in family(pid))


def self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# -- requests --------------------------------------------------------------------------------

# (module, path, via): the WAT floor guest (the engine without CPython), the raw echo (the SDK's
# minimum), the quick start's protobuf echo, and the quick start's caller -> echo; "engine"
# requests go straight to the engine's port, "proxy" ones to the proxy's data port.
ROWS: dict[str, tuple[str, str, str]] = {
    "floor": ("floor", "/echo", "engine"),
    "raw": ("raw-echo", "/echo", "engine"),
    "proto": ("echo", "/echo.EchoService/Echo", "engine"),
    "proto_proxy": ("echo", "/echo.EchoService/Echo", "proxy"),
    "caller_proxy": ("caller", "/run", "proxy"),
    # issue 19 item 4: a -> b -> c -> d, and one request making 8 calls to the raw echo
    "chain4_proxy": ("a", "/chain", "proxy"),
    "fanout8_proxy": ("a", "/fanout", "proxy"),
}
# The same with a 5 ms pause before each request (traffic that leaves the engine idle time)
PAUSED = {"proto_paused": "proto", "caller_proxy_paused": "caller_proxy"}
ROWS |= {name: ROWS[row] for name, row in PAUSED.items()}
CHAIN = [f"example.{hop}" for hop in "bcd"]
HOPS = "abcd"


def row_request(row: str, stack: Stack) -> tuple[int, str, dict[str, str]]:
    module, path, via = ROWS[row]
    if via == "proxy":
        return stack.proxy_port, path, destination(module, path)
    return stack.engine_port, path, {"x-wr-module": module, "x-wr-namespace": "example"}


def row_body(row: str, size: int) -> bytes:
    row = PAUSED.get(row, row)
    if row.startswith("proto"):
        return echo_body(size)
    if row == "caller_proxy":
        return b"x" * size  # the message the caller sends on to echo
    if row == "chain4_proxy":
        return json.dumps(CHAIN).encode()
    if row == "fanout8_proxy":
        return json.dumps({"url": "http://example.raw-echo/echo", "n": 8}).encode()
    return bytes(i % 251 for i in range(size))


def check_reply(row: str, body: bytes, status: int, data: bytes) -> None:
    row = PAUSED.get(row, row)
    if row == "caller_proxy":
        ok = body.decode() in data.decode()
    elif row == "chain4_proxy":
        ok = data == b"a>b>c>d"
    elif row == "fanout8_proxy":
        ok = json.loads(data)["statuses"] == [200] * 8
    else:
        ok = len(data) == len(body)
    ok = ok and status == 200
    if not ok:
        raise RuntimeError(f"bad reply for {row}: {status} {data[:200]!r}")


def sequential(stack: Stack, row: str, body: bytes, count: int) -> tuple[list[float], float]:
    """count requests one after another: (latencies in s, CPU s of every process per request)."""
    port, path, headers = row_request(row, stack)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    pids = stack.pids()
    pause = 0.005 if row in PAUSED else 0.0
    c0, s0 = sum(proc_cpu(p) for p in pids), self_cpu()
    for _ in range(count):
        if pause:
            time.sleep(pause)  # idle time for the engine, outside the measured latency
        t = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        times.append(time.perf_counter() - t)
        check_reply(row, body, resp.status, data)
    c1, s1 = sum(proc_cpu(p) for p in pids), self_cpu()
    conn.close()
    return times, ((c1 - c0) + (s1 - s0)) / count


async def _client(port: int, request: bytes, stop_at: float, counts: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while time.monotonic() < stop_at:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace"))
        counts[0] += 1
    writer.close()


def throughput(stack: Stack, row: str, body: bytes, seconds: float, connections: int) -> int:
    port, path, headers = row_request(row, stack)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {path} HTTP/1.1\r\nhost: bench\r\n{head}content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    counts = [0]

    async def run() -> None:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(_client(port, request, stop_at, counts) for _ in range(connections)))

    import uvloop

    uvloop.run(run())
    return counts[0]


# -- in-process costs --------------------------------------------------------------------------


def instantiate_ms(artifact: Path, rounds: int) -> tuple[float, float]:
    """(deserialize ms, median Store+WASI+instantiate ms) measured in a child process."""
    code = f"""
import statistics, time, wasmtime
from pathlib import Path
from wasmtime.component import Component
from runtime.engine.host import WasmHost
from runtime.engine.spec import ModuleSpec
t = time.perf_counter()
host = WasmHost([], "http://127.0.0.1:9", Path("{GEN}/inst"), capabilities={{"tracing": {{}}}})
c = Component.deserialize_file(host.engine, "{artifact}")
des = (time.perf_counter() - t) * 1000
times = []
for _ in range({rounds}):
    t = time.perf_counter()
    s = wasmtime.Store(host.engine); s.set_epoch_deadline(1000)
    w = wasmtime.WasiConfig(); w.inherit_stderr(); s.set_wasi(w)
    host.linker.instantiate(s, c)
    times.append((time.perf_counter() - t) * 1000)
print(des, statistics.median(times))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), float(out[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# Targets of issue 19 (p50 ms through the engine port, sequential).
P50_TARGETS = {"floor": 0.5, "raw": 1.8, "proto": 2.5, "caller_proxy": 6.0}


def measure_rows(
    stack: Stack, tag: str, count: int, rows: list[str], sizes: list[str]
) -> dict[str, dict[str, Any]]:
    """p50, p99 and CPU per request (every process) of each row, sequential requests."""
    m: dict[str, dict[str, Any]] = {}
    for row in rows:
        for label in sizes if row in ("raw", "proto") else ["100B"]:
            body = row_body(row, SIZES[label])
            n = count if label == "100B" else max(20, count // {"64KiB": 4, "1MiB": 20}[label])
            sequential(stack, row, body, 10)  # warm-up
            times, cpu = sequential(stack, row, body, n)
            target = P50_TARGETS.get(row) if label == "100B" else None
            m[f"p50_{row}_{label}_{tag}"] = metric(statistics.median(times) * 1000, "ms", target)
            m[f"p99_{row}_{label}_{tag}"] = metric(pct(times, 0.99) * 1000, "ms")
            m[f"cpu_all_{row}_{label}_{tag}"] = metric(cpu * 1000, "ms")
    if f"p50_caller_proxy_100B_{tag}" in m and f"p50_proto_100B_{tag}" in m:
        caller = m[f"p50_caller_proxy_100B_{tag}"]["value"]
        m[f"caller_over_proto_{tag}"] = metric(
            caller / m[f"p50_proto_100B_{tag}"]["value"], "x", 2.3
        )
        if f"p50_proto_proxy_100B_{tag}" in m:
            m[f"caller_over_proto_proxy_{tag}"] = metric(
                caller / m[f"p50_proto_proxy_100B_{tag}"]["value"], "x", 2.3
            )
    paused = (f"p50_caller_proxy_paused_100B_{tag}", f"p50_proto_paused_100B_{tag}")
    if all(name in m for name in paused):
        ratio = m[paused[0]]["value"] / m[paused[1]]["value"]
        m[f"caller_over_proto_paused_{tag}"] = metric(ratio, "x", 2.3)
    return m


def measure_throughput(stack: Stack, tag: str, seconds: float) -> dict[str, dict[str, Any]]:
    """8 connections against the engine port: req/s and engine CPU per 100 B request."""
    m: dict[str, dict[str, Any]] = {}
    assert stack.engine is not None
    pid = stack.engine.pid
    for row in ("proto", "raw"):
        body = row_body(row, 100)
        throughput(stack, row, body, 0.3, 8)  # warm-up
        e0, f0 = engine_cpu(pid), proc_cpu(pid)
        count = throughput(stack, row, body, seconds, 8)
        e1, f1 = engine_cpu(pid), proc_cpu(pid)
        m[f"throughput_{row}_100B_{tag}"] = metric(count / seconds, "req/s", better="higher")
        m[f"engine_cpu_per_req_{row}_100B_{tag}"] = metric(
            (e1 - e0) / count * 1000, "ms", {"proto": 3.0, "raw": 2.3}[row]
        )
        # the front's share (HTTP parsing, dispatch, framing); the rest is the workers'
        m[f"front_cpu_per_req_{row}_100B_{tag}"] = metric((f1 - f0) / count * 1000, "ms")
    return m


def build_modules() -> list[BenchModule]:
    import wasmtime

    from wr_sdk.codegen import generate_messages
    from wrctl.build.cached import build_cached

    generate_messages(REPO / "examples/echo/schemas/echo.proto", GEN)
    floor = GEN / "floor.wasm"
    floor.write_bytes(wasmtime.wat2wasm((REPO / "bench/guests/floor.wat").read_text()))
    testkit = build_cached(REPO / "tests/integration/engine/guests/testkit")
    return [
        *(BenchModule(hop, testkit, env=(("NAME", hop),)) for hop in HOPS),
        BenchModule("floor", floor),
        BenchModule("raw-echo", build_cached(REPO / "bench/guests/raw_echo")),
        BenchModule("echo", build_cached(REPO / "examples/echo/echo"), schema=True),
        BenchModule("caller", build_cached(REPO / "examples/echo/caller"), schema=True),
    ]


def stack_for(
    work: Path, cache: Path, modules: list[BenchModule], workers: int, code: Path = REPO
) -> Stack:
    return start_stack(work, modules, workers, code, cache=cache)


def base_modules(base: Path) -> list[BenchModule]:
    """The bench modules as the checkout base builds them (its wr_sdk and WIT): an A/B run
    compares guests too, and a guest only runs on an engine of the same WIT."""
    code = (
        "import json; from bench.engine import build_modules; "
        "print(json.dumps([[m.name, str(m.wasm), m.schema, m.env] for m in build_modules()]))"
    )
    env = {**os.environ, "PYTHONPATH": f"{base}{os.pathsep}{base / 'sdk'}"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=base, env=env, capture_output=True, text=True
    )
    if out.returncode:
        raise RuntimeError(f"building the guests of {base} failed:\n{out.stderr[-3000:]}")
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    return [BenchModule(n, Path(w), s, tuple(tuple(kv) for kv in e)) for n, w, s, e in rows]


def ab_run(args: argparse.Namespace, modules: list[BenchModule], tmp: Path) -> None:
    """Base and this checkout's engine and guests taking turns, `rounds` times; median and
    spread."""
    base = Path(args.ab).resolve()
    from runtime.engine.component_cache import ComponentCache

    old_modules = base_modules(base)
    for module in old_modules:
        ComponentCache(tmp / "cache").ensure(module.wasm)
    rows = args.rows or list(ROWS)
    samples: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for variant, code, mods in (("base", base, old_modules), ("new", REPO, modules)):
            for workers in args.workers:
                tag = f"{variant}_w{workers}"
                stack = stack_for(tmp / f"{tag}-{r}", tmp / "cache", mods, workers, code)
                try:
                    got = measure_rows(stack, tag, args.count, rows, ["100B"])
                finally:
                    stack.close()
                for name, value in got.items():
                    samples.setdefault(name, []).append(float(value["value"]))
                print(f"round {r + 1} {tag}: done", flush=True)
    m: dict[str, dict[str, Any]] = {}
    for name, values in samples.items():
        unit = "x" if "_over_" in name else "ms"
        m[name] = metric(statistics.median(values), unit)
        m[f"{name}__spread"] = metric(max(values) - min(values), unit)
    path = write_results("engine-ab", m)
    print(f"\nwrote {path.relative_to(REPO)} (runs: {json.dumps(samples)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests (< 2 minutes)")
    parser.add_argument("--ab", metavar="BASE", help="A/B against the checkout BASE (worktree)")
    parser.add_argument("--rounds", type=int, default=3, help="A/B rounds")
    parser.add_argument("--count", type=int, default=300, help="A/B requests per row")
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="A/B worker counts")
    parser.add_argument("--rows", nargs="+", choices=list(ROWS), help="A/B only these rows")
    args = parser.parse_args()

    from runtime.engine.component_cache import ComponentCache

    modules = build_modules()
    with tempfile.TemporaryDirectory(prefix="wr-bench-") as tmpdir:
        tmp = Path(tmpdir)
        cache = ComponentCache(tmp / "cache")
        for module in modules:
            cache.ensure(module.wasm)
        if args.ab:
            ab_run(args, modules, tmp)
            return
        echo = next(m for m in modules if m.name == "echo")
        warm = cache.ensure(echo.wasm)
        des, inst = instantiate_ms(warm.artifact, 100 if args.quick else 500)
        m: dict[str, dict[str, Any]] = {}
        m["warm_load_verify"] = metric(warm.seconds * 1000, "ms", 1000)
        m["deserialize"] = metric(des, "ms")
        m["instantiate_p50"] = metric(inst, "ms")
        count = 200 if args.quick else 1000
        rps: dict[str, float] = {}
        for workers in (1, 2):
            tag = f"w{workers}"
            t = time.monotonic()
            stack = stack_for(tmp / tag, tmp / "cache", modules, workers)
            m[f"stack_start_warm_{tag}"] = metric(time.monotonic() - t, "s")
            try:
                m |= measure_rows(stack, tag, count, list(ROWS), list(SIZES))
                m |= measure_throughput(stack, tag, 1.5 if args.quick else 8.0)
            finally:
                stack.close()
            rps[tag] = float(m[f"throughput_raw_100B_{tag}"]["value"])
        m["scaling_raw_2w_over_1w"] = metric(rps["w2"] / rps["w1"], "x", 1.7, better="higher")
    path = write_results("engine", m)
    print(f"\nwrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()

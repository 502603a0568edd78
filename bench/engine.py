"""Benchmark wr-engine: compile/load/instantiate costs, and echo latency, throughput and CPU per
request through the engine's HTTP port with 1 and 2 worker processes.

    .venv/bin/python bench/engine.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
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


# -- engine process ----------------------------------------------------------------------------


def start_engine(
    modules: dict[str, Path], cache: Path, workers: int, port: int, tmp: Path, resident: int = 0
) -> subprocess.Popen[bytes]:
    config = tmp / f"engine-{port}.toml"
    config.write_text(
        f'listen_address = "127.0.0.1:{port}"\nworkers = {workers}\ncache_dir = "{cache}"\n'
        f'log_level = "warning"\nresident_memory_mb = {resident}\n\n'
        + "".join(
            f'[[module]]\nname = "{name}"\nnamespace = "example"\nversion = "1.0.0"\n'
            f'wasm_path = "{wasm}"\n\n'
            for name, wasm in modules.items()
        )
    )
    with open(tmp / "engine.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.engine.cli", "--config", str(config)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/__health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"engine exited: {(tmp / 'engine.log').read_text()[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError("engine did not become ready in 60 s")


# The quick start's echo (protobuf parsed and built in the guest), and a raw echo (the SDK's
# minimum): the difference is guest work, the rest is the engine's.
TARGETS = {
    "proto": ("/echo.EchoService/Echo", {"x-wr-module": "echo", "x-wr-namespace": "example"}),
    "raw": ("/echo", {"x-wr-module": "raw-echo", "x-wr-namespace": "example"}),
}


def sequential(port: int, kind: str, body: bytes, count: int) -> list[float]:
    path, headers = TARGETS[kind]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    for _ in range(count):
        t = time.perf_counter()
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        times.append(time.perf_counter() - t)
        if resp.status != 200 or len(data) != len(body):
            raise RuntimeError(f"bad echo: {resp.status} {data[:200]!r}")
    conn.close()
    return times


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


def throughput(port: int, kind: str, body: bytes, seconds: float, connections: int) -> int:
    path, headers = TARGETS[kind]
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
host = WasmHost([], "http://127.0.0.1:9", Path("{GEN}/inst"))
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


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bodies(kind: str, size: int) -> bytes:
    return echo_body(size) if kind == "proto" else bytes(i % 251 for i in range(size))


def measure_engine(
    m: dict[str, dict[str, Any]], port: int, pid: int, tag: str, quick: bool, sizes: list[str]
) -> float:
    """Latency per body size and kind, then 100 B throughput and CPU; returns raw req/s."""
    counts = (
        {"100B": 200, "64KiB": 100, "1MiB": 30}
        if quick
        else {"100B": 2000, "64KiB": 800, "1MiB": 200}
    )
    for kind in ("proto", "raw"):
        for label in sizes:
            body = bodies(kind, SIZES[label])
            sequential(port, kind, body, 10)  # warm-up
            times = sequential(port, kind, body, counts[label])
            target = {"100B": 1.8, "1MiB": 8.0}.get(label) if kind == "proto" else None
            m[f"p50_{kind}_{label}_{tag}"] = metric(statistics.median(times) * 1000, "ms", target)
            m[f"p99_{kind}_{label}_{tag}"] = metric(pct(times, 0.99) * 1000, "ms")
    rps = 0.0
    seconds = 1.5 if quick else 10.0
    for kind in ("proto", "raw"):
        body = bodies(kind, 100)
        throughput(port, kind, body, 0.3, 8)  # warm-up
        e0, f0, s0 = engine_cpu(pid), proc_cpu(pid), self_cpu()
        count = throughput(port, kind, body, seconds, 8)
        e1, f1, s1 = engine_cpu(pid), proc_cpu(pid), self_cpu()
        m[f"throughput_{kind}_100B_{tag}"] = metric(count / seconds, "req/s", better="higher")
        m[f"engine_cpu_per_req_{kind}_100B_{tag}"] = metric(
            (e1 - e0) / count * 1000, "ms", 1.7 if kind == "proto" else None
        )
        # the front's share (HTTP parsing, dispatch, framing); the rest is the workers'
        m[f"front_cpu_per_req_{kind}_100B_{tag}"] = metric((f1 - f0) / count * 1000, "ms")
        m[f"all_cpu_per_req_{kind}_100B_{tag}"] = metric(
            ((e1 - e0) + (s1 - s0)) / count * 1000, "ms"
        )
        if kind == "raw":
            rps = count / seconds
    return rps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests (< 1 minute)")
    args = parser.parse_args()

    from runtime.engine.component_cache import ComponentCache
    from wr_sdk.codegen import generate_messages
    from wrctl.build.cached import build_cached

    generate_messages(REPO / "examples/echo/schemas/echo.proto", GEN)
    modules = {
        "echo": build_cached(REPO / "examples/echo/echo"),
        "raw-echo": build_cached(REPO / "bench/guests/raw_echo"),
    }
    m: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="wr-bench-") as tmpdir:
        tmp = Path(tmpdir)
        cache = ComponentCache(tmp / "cache")
        cold = cache.ensure(modules["echo"])
        cache.ensure(modules["raw-echo"])
        warm = cache.ensure(modules["echo"])
        des, inst = instantiate_ms(cold.artifact, 100 if args.quick else 500)
        m["cold_compile"] = metric(cold.seconds, "s")
        m["warm_load_verify"] = metric(warm.seconds * 1000, "ms", 1000)
        m["deserialize"] = metric(des, "ms")
        m["instantiate_p50"] = metric(inst, "ms")
        rps: dict[str, float] = {}
        # w1/w2: worker processes; r16: 1 worker keeping 16 MiB resident (latency over CPU).
        runs = [("w1", 1, 0, list(SIZES)), ("w2", 2, 0, list(SIZES))]
        if not args.quick:
            runs.append(("w1_r16", 1, 16, ["100B"]))
        for tag, workers, resident, sizes in runs:
            port = free_port()
            t = time.monotonic()
            proc = start_engine(modules, tmp / "cache", workers, port, tmp, resident)
            m[f"engine_start_warm_{tag}"] = metric(time.monotonic() - t, "s")
            try:
                rps[tag] = measure_engine(m, port, proc.pid, tag, args.quick, sizes)
            finally:
                proc.terminate()
                proc.wait(10)
        m["scaling_raw_2w_over_1w"] = metric(rps["w2"] / rps["w1"], "x", 1.6, better="higher")
    path = write_results("engine", m)
    print(f"\nwrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()

"""Which asyncio S3 client the blobstore capability uses: aiobotocore or obstore, measured.

Against a moto server on loopback, each client runs in a child process of its own (so CPU time
and memory are its alone) and the two take turns op by op, alternating who goes first each
round: put/get of 1 KiB and 1 MiB objects (bodies from/to files, as the binding moves them),
put of 16 MiB streamed from a file, get of 16 MiB streamed to a file, and listing 1000 keys.
Per op: median wall latency and CPU (all the child's threads, obstore's Rust runtime too).
Then, once per client: a 16 MiB get cut off after 1 MiB (bytes pulled before the stop, and
how much the child's RSS grew: a client that buffers the whole body grows by ~16 MiB), key
shapes S3 allows that must round-trip unchanged, import time, RSS at rest and peak RSS, and
the installed size of what the client adds to wruntime's dependencies.

    .venv/bin/python bench/s3_clients.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._results import metric, write_results  # noqa: E402

CLIENTS = ("aiobotocore", "obstore")
BUCKET = "bench-s3-clients"
CUT_LIMIT = 1 << 20
CHUNK = 256 << 10
# S3 keys are any UTF-8 up to 1024 bytes: these must come back as they were stored
ODD_KEYS = ("a//b", "dir/", "/lead", "sp ace+plus", "x/./y", "caf\u00e9", "pct%2F")
# per round: op -> how many times (small objects are cheap, so more samples)
OPS = {
    "put_1k": 20,
    "get_1k": 20,
    "put_1m": 5,
    "get_1m": 5,
    "put_16m": 1,
    "get_16m": 1,
    "list_1000": 2,
}


def high_water_mark() -> int:
    """Peak RSS of this process image (VmHWM; ru_maxrss would carry the parent's over exec)."""
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---- the clients, each as the same five async calls ------------------------------------------


class Botocore:
    def __init__(self, endpoint: str, key: str, secret: str) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        self._ctx = get_session().create_client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            region_name="us-east-1",
            config=AioConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        self.client: Any = None

    async def open(self) -> None:
        self.client = await self._ctx.__aenter__()

    async def close(self) -> None:
        await self._ctx.__aexit__(None, None, None)

    async def put_file(self, key: str, path: Path) -> None:
        with open(path, "rb") as f:  # noqa: ASYNC230  (tmpfs; both clients alike)
            await self.client.put_object(Bucket=BUCKET, Key=key, Body=f)

    async def get_to_file(self, key: str, path: Path, limit: int | None = None) -> int:
        resp = await self.client.get_object(Bucket=BUCKET, Key=key)
        got = 0
        async with resp["Body"] as body:
            with open(path, "wb") as out:  # noqa: ASYNC230  (tmpfs; both clients alike)
                async for chunk in body.iter_chunks(CHUNK):
                    got += len(chunk)
                    if limit is not None and got > limit:
                        break
                    out.write(chunk)
        return got

    async def list_keys(self, prefix: str) -> int:
        n = 0
        paginator = self.client.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket=BUCKET, Prefix=prefix):
            n += len(page.get("Contents", []))
        return n

    async def stored_keys(self, prefix: str) -> list[str]:
        resp = await self.client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return [o["Key"] for o in resp.get("Contents", [])]

    async def delete(self, key: str) -> None:
        await self.client.delete_object(Bucket=BUCKET, Key=key)


class Obstore:
    def __init__(self, endpoint: str, key: str, secret: str) -> None:
        from obstore.store import S3Store

        self.store = S3Store(
            BUCKET,
            endpoint=endpoint,
            access_key_id=key,
            secret_access_key=secret,
            region="us-east-1",
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def put_file(self, key: str, path: Path) -> None:
        import obstore

        await obstore.put_async(self.store, key, path)

    async def get_to_file(self, key: str, path: Path, limit: int | None = None) -> int:
        import obstore

        resp = await obstore.get_async(self.store, key)
        got = 0
        with open(path, "wb") as out:  # noqa: ASYNC230  (tmpfs; both clients alike)
            async for chunk in resp.stream(min_chunk_size=CHUNK):
                got += len(chunk)
                if limit is not None and got > limit:
                    break
                out.write(chunk)
        return got

    async def list_keys(self, prefix: str) -> int:
        import obstore

        n = 0
        async for batch in obstore.list(self.store, prefix, chunk_size=1000):
            n += len(batch)
        return n

    async def stored_keys(self, prefix: str) -> list[str]:
        import obstore

        return [m["path"] for m in await obstore.list(self.store, prefix).collect_async()]

    async def delete(self, key: str) -> None:
        import obstore

        await obstore.delete_async(self.store, key)


# ---- the child: one client, commands on stdin, one JSON answer per line ---------------------


def child(name: str, endpoint: str, key: str, secret: str, tmp: Path) -> None:
    started = time.perf_counter()
    client: Botocore | Obstore = (Botocore if name == "aiobotocore" else Obstore)(
        endpoint, key, secret
    )
    import_secs = time.perf_counter() - started
    loop = asyncio.new_event_loop()
    loop.run_until_complete(client.open())
    files = {size: tmp / f"{name}-{size}.in" for size in ("1k", "1m", "16m")}
    out = tmp / f"{name}.out"

    def run(coro: Coroutine[Any, Any, Any]) -> Any:
        return loop.run_until_complete(coro)

    actions: dict[str, Callable[[], Any]] = {
        "put_1k": lambda: run(client.put_file(f"{name}/1k", files["1k"])),
        "get_1k": lambda: run(client.get_to_file(f"{name}/1k", out)),
        "put_1m": lambda: run(client.put_file(f"{name}/1m", files["1m"])),
        "get_1m": lambda: run(client.get_to_file(f"{name}/1m", out)),
        "put_16m": lambda: run(client.put_file(f"{name}/16m", files["16m"])),
        "get_16m": lambda: run(client.get_to_file(f"{name}/16m", out)),
        "list_1000": lambda: run(client.list_keys("many/")),
    }
    print(json.dumps({"ready": True, "import_secs": import_secs}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op in actions:
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(cmd["times"]):
                actions[op]()
            answer: dict[str, Any] = {
                "secs": (time.perf_counter() - wall) / cmd["times"],
                "cpu": (time.process_time() - cpu) / cmd["times"],
            }
        elif op == "cutoff":
            before = rss_bytes()
            pulled = run(client.get_to_file("shared/16m", out, limit=CUT_LIMIT))
            answer = {"pulled": pulled, "rss_growth": rss_bytes() - before}
        elif op == "keys":
            # each odd key: stored, listed and read back under exactly that name?
            bad = []
            for k in ODD_KEYS:
                full = f"odd-{name}/{k}"
                try:
                    run(client.put_file(full, files["1k"]))
                    listed = run(client.stored_keys(f"odd-{name}/"))
                    if full not in listed or run(client.get_to_file(full, out)) != 1024:
                        bad.append(f"{k!r}: stored as another name")
                    run(client.delete(full))
                except Exception as exc:
                    bad.append(f"{k!r}: {type(exc).__name__}")
            try:  # a listing over a key another client wrote with an empty segment
                run(client.stored_keys("foreign/"))
                foreign = "ok"
            except Exception as exc:
                foreign = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            answer = {"bad": bad, "foreign_list": foreign}
        elif op == "memory":
            peak = high_water_mark()
            answer = {"rss": rss_bytes(), "peak_rss": peak}
        else:
            answer = {"error": f"unknown op {op}"}
        print(json.dumps(answer), flush=True)
    run(client.close())


# ---- the parent ------------------------------------------------------------------------------


def installed_size(dist: str, exclude: set[str]) -> tuple[int, list[str]]:
    """Bytes on disk of dist and the requirements it pulls in that are not in exclude."""
    from importlib import metadata

    from packaging.requirements import Requirement

    seen: set[str] = set()
    pending = [dist]
    total = 0
    while pending:
        name = pending.pop().lower().replace("_", "-")
        if name in seen or name in exclude:
            continue
        seen.add(name)
        try:
            d = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for f in d.files or []:
            with contextlib.suppress(OSError):
                total += os.path.getsize(str(d.locate_file(f)))
        for req in d.requires or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                pending.append(r.name)
    return total, sorted(seen)


def base_closure() -> set[str]:
    """wruntime's runtime dependencies without the two clients, and all they require."""
    from importlib import metadata

    from packaging.requirements import Requirement

    roots = [
        Requirement(r).name
        for r in metadata.distribution("wruntime").requires or []
        if "extra ==" not in r
    ]
    seen: set[str] = set()
    pending = [r for r in roots if r not in CLIENTS]
    while pending:
        name = pending.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            reqs = metadata.distribution(name).requires or []
        except metadata.PackageNotFoundError:
            continue
        for req in reqs:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                pending.append(r.name)
    return seen


class Child:
    def __init__(self, name: str, endpoint: str, tmp: Path) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", name, endpoint, str(tmp)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.hello = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} child exited ({self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"{self.name}: {answer['error']}")
        return answer

    def ask(self, op: str, times: int = 1) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, "times": times}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    parser.add_argument("--child", nargs=3, metavar=("CLIENT", "ENDPOINT", "TMP"))
    args = parser.parse_args()
    if args.child:
        name, endpoint, tmp = args.child
        child(name, endpoint, "bench", "bench", Path(tmp))
        return

    from tests.infra.process import ManagedProcess, free_port

    rounds = 2 if args.quick else 6
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="wr-bench-s3-") as tmpdir:
        tmp = Path(tmpdir)
        moto = ManagedProcess(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            tmp / "moto.log",
            name="moto_server",
        )
        moto.start().wait_ready(f"{endpoint}/moto-api/", 30)
        try:
            m = measure(endpoint, tmp, rounds)
        finally:
            moto.stop()
    path = write_results("s3-clients", m)
    print(f"\nwrote {path.relative_to(REPO)}")


def measure(endpoint: str, tmp: Path, rounds: int) -> dict[str, dict[str, object]]:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=BUCKET)
    for i in range(1000):
        s3.put_object(Bucket=BUCKET, Key=f"many/{i:04d}", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="foreign/a//b", Body=b"x")
    s3.put_object(Bucket=BUCKET, Key="shared/16m", Body=os.urandom(16 << 20))
    for name in CLIENTS:
        for size, n in (("1k", 1 << 10), ("1m", 1 << 20), ("16m", 16 << 20)):
            (tmp / f"{name}-{size}.in").write_bytes(os.urandom(n))

    children = [Child(name, endpoint, tmp) for name in CLIENTS]
    m: dict[str, dict[str, object]] = {"load_average_1m_at_start": metric(os.getloadavg()[0], "")}
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        for child_ in children:  # warm-up: connections, first-call costs
            for op in OPS:
                child_.ask(op)
        for r in range(rounds):
            order = children if r % 2 == 0 else children[::-1]
            for op, times in OPS.items():
                for child_ in order:
                    samples.setdefault((child_.name, op), []).append(child_.ask(op, times))
        extra = {c.name: (c.ask("cutoff"), c.ask("keys"), c.ask("memory")) for c in children}
    finally:
        for child_ in children:
            child_.close()

    for op in OPS:
        for name in CLIENTS:
            got = samples[(name, op)]
            m[f"{op}_{name}_ms"] = metric(statistics.median(s["secs"] for s in got) * 1e3, "ms")
            m[f"{op}_{name}_cpu_ms"] = metric(statistics.median(s["cpu"] for s in got) * 1e3, "ms")
    base = base_closure()
    for c in children:
        cut, keys, mem = extra[c.name]
        name = c.name
        lost = keys["bad"]
        m[f"cutoff_pulled_{name}_mib"] = metric(cut["pulled"] / (1 << 20), "MiB")
        m[f"cutoff_rss_growth_{name}_mib"] = metric(cut["rss_growth"] / (1 << 20), "MiB")
        m[f"odd_keys_failing_{name}"] = metric(len(lost), "keys", 0)
        m[f"foreign_list_fails_{name}"] = metric(float(keys["foreign_list"] != "ok"), "", 0)
        m[f"import_{name}_ms"] = metric(c.hello["import_secs"] * 1e3, "ms")
        m[f"rss_after_{name}_mib"] = metric(mem["rss"] / (1 << 20), "MiB")
        m[f"peak_rss_{name}_mib"] = metric(mem["peak_rss"] / (1 << 20), "MiB")
        size, dists = installed_size(name, base)
        m[f"installed_{name}_mib"] = metric(size / (1 << 20), "MiB")
        print(f"{name}: adds {', '.join(dists)}")
        print(f"  keys that do not round-trip: {lost or 'none'}")
        print(f"  listing a prefix holding 'foreign/a//b': {keys['foreign_list']}")
    return m


if __name__ == "__main__":
    main()

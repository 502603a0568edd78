"""Benchmark the host capabilities from inside a guest (issue 18 item 10).

Tracing: the guest-side cost of opening and closing one span, timed by the guest itself
(tests/integration/engine/guests/tracer, route /bench) in a WasmHost in this process: through
wr_sdk.tracing (a `with` block, one attribute) and through the raw WIT binding, first with
tracing off (no exporter: OpenTelemetry's no-op spans) and then with an SDK provider that
records every span and exports in batches (to nowhere), as a worker with otlp_endpoint does.
Goal: <= 50 us per span with export on. Guest time is CPU time, so on a busy machine every
figure grows with the load (recorded as load_average_1m_at_start).

db: a one-row `SELECT id, name FROM bench_items WHERE id = $1` from a guest
(tests/integration/engine/guests/with_db, route /bench: through wr_sdk.db and through the raw
binding) against the same query on the same table from asyncpg directly (one connection as the
same namespace role, its own event loop), rounds interleaved, on a private PostgreSQL started
like the tests' (tests/infra/postgres.py). Goal: the guest call adds <= 0.5 ms.

Blobstore: a 1 MiB put+get timed by the guest (tests/integration/engine/guests/with_blob,
op "bench", through wr_sdk.blobstore) against the same put (from a file) and get (streamed to
a file) made directly with aiobotocore in this process, both against one moto server, rounds
interleaved. Goal: the guest at most 1.5x the direct client.

LLM: one short `llm.complete` from a guest (tests/integration/engine/guests/with_llm, route
/bench) against the fake Messages API on loopback (tests/infra/fake_anthropic.py), and the
same call made with the anthropic SDK's AsyncAnthropic directly: what the capability adds
(reading the request, the host loop hop, writing the response) on top of the HTTP call.

    .venv/bin/python bench/capabilities.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._results import metric, write_results  # noqa: E402

GUEST = REPO / "tests/integration/engine/guests/tracer"
DB_GUEST = REPO / "tests/integration/engine/guests/with_db"
DB_QUERY = "SELECT id, name FROM bench_items WHERE id = $1"
DB_ROWS100 = "SELECT g AS id, 'name ' || g AS name FROM generate_series(1, 100) AS g"
DB_ADDED_GOAL_US = 500.0
BLOB_GUEST = REPO / "tests/integration/engine/guests/with_blob"
BLOB_GOAL_RATIO = 1.5
LLM_GUEST = REPO / "tests/integration/engine/guests/with_llm"
SAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SPAN_GOAL_US = 50.0


def _span_costs(host: Any, key: str, spans: int, rounds: int) -> dict[str, float]:
    """Median over rounds of us per span open+close: sdk (one attribute), sdk_no_attr, raw
    (the WIT binding, no attribute)."""
    import json

    costs: dict[str, list[float]] = {}
    for _ in range(rounds):
        out = host.run(key, "POST", "/bench", [("traceparent", SAMPLED)], str(spans).encode())
        host.release()
        if out.status != 200:
            raise RuntimeError(f"/bench answered {out.status}: {out.body[:200]!r}")
        for name, value in json.loads(out.body).items():
            costs.setdefault(name.removesuffix("_us"), []).append(value)
    return {name: statistics.median(values) for name, values in costs.items()}


def _db_costs(tmp: Path, queries: int, rounds: int) -> dict[str, dict[str, object]]:
    """Median us per one-row query: guest (sdk, raw) and asyncpg direct, interleaved."""
    import asyncio
    import json

    import asyncpg  # type: ignore[import-untyped]

    from runtime.db_provision import ensure_namespace
    from runtime.engine.cap_db import DbBinding
    from runtime.engine.capabilities import DB_PASSWORD_SECRET
    from runtime.engine.component_cache import ComponentCache
    from runtime.engine.host import WasmHost
    from runtime.engine.spec import ModuleSpec
    from tests.infra.postgres import postgres
    from wrctl.build.cached import build_cached

    cluster = postgres._get_wrapped_function()()  # the tests' fixture, driven by hand
    server = next(cluster)
    try:
        dsn = server.create_database("wr_bench_db")

        async def prepare() -> None:
            admin = await asyncpg.connect(dsn)
            await ensure_namespace(admin, "bench", "pw")
            await admin.execute(
                "CREATE TABLE wr_ns_bench.bench_items (id int8 PRIMARY KEY, name text);"
                "INSERT INTO wr_ns_bench.bench_items VALUES (1, 'one');"
                "ALTER TABLE wr_ns_bench.bench_items OWNER TO wr_ns_bench"
            )
            await admin.close()

        asyncio.run(prepare())
        artifact = ComponentCache(tmp / "cache").ensure(build_cached(DB_GUEST)).artifact
        spec = ModuleSpec("db", "bench", "1.0.0", str(artifact), 60.0, 256 << 20, 64 << 20, ["db"])
        settings = DbBinding.settings({"database": {"url": dsn}})
        host = WasmHost(
            [spec], "http://127.0.0.1:9", tmp / "db-scratch", capabilities={"db": settings}
        )
        host.set_capability_secrets({"bench": {DB_PASSWORD_SECRET: "pw"}})

        def guest_round() -> dict[str, float]:
            out = host.run(spec.key, "POST", "/bench", [], str(queries).encode())
            host.release()
            if out.status != 200:
                raise RuntimeError(f"/bench answered {out.status}: {out.body[:300]!r}")
            answer: dict[str, float] = json.loads(out.body)
            return answer

        loop = asyncio.new_event_loop()
        conn = loop.run_until_complete(
            asyncpg.connect(dsn, user="wr_ns_bench", server_settings={"search_path": "wr_ns_bench"})
        )

        async def direct(sql: str, args: list[Any], n: int) -> float:
            await conn.fetch(sql, *args)
            started = time.perf_counter()
            for _ in range(n):
                await conn.fetch(sql, *args)
            return (time.perf_counter() - started) / n * 1e6

        guest_round()  # warm-up: pool, statement cache
        costs: dict[str, list[float]] = {k: [] for k in ("sdk", "raw", "direct", "r100", "d100")}
        for _ in range(rounds):
            answer = guest_round()
            costs["sdk"].append(answer["sdk_us"])
            costs["raw"].append(answer["raw_us"])
            costs["r100"].append(answer["raw_100_rows_us"])
            costs["direct"].append(loop.run_until_complete(direct(DB_QUERY, [1], queries)))
            costs["d100"].append(loop.run_until_complete(direct(DB_ROWS100, [], queries // 10)))
        loop.run_until_complete(conn.close())
        loop.close()
        host.close()
    finally:
        cluster.close()  # stops the server, removes its files
    med = {k: statistics.median(v) for k, v in costs.items()}
    return {
        "db_query_one_row_guest_sdk": metric(med["sdk"], "us"),
        "db_query_one_row_guest_raw": metric(med["raw"], "us"),
        "db_query_one_row_asyncpg_direct": metric(med["direct"], "us"),
        "db_query_one_row_added_by_guest_sdk": metric(
            med["sdk"] - med["direct"], "us", DB_ADDED_GOAL_US
        ),
        "db_query_one_row_added_by_guest_raw": metric(
            med["raw"] - med["direct"], "us", DB_ADDED_GOAL_US
        ),
        "db_query_100_rows_guest_raw": metric(med["r100"], "us"),
        "db_query_100_rows_asyncpg_direct": metric(med["d100"], "us"),
    }


def _blob_rows(tmp: Path, rounds: int, n: int) -> dict[str, dict[str, object]]:
    """1 MiB put+get: the guest through the binding vs aiobotocore direct (interleaved)."""
    import asyncio
    import json
    import time

    from runtime.engine.cap_blobstore import BlobstoreBinding
    from runtime.engine.component_cache import ComponentCache
    from runtime.engine.host import WasmHost
    from runtime.engine.spec import ModuleSpec
    from tests.infra.process import ManagedProcess, free_port
    from wrctl.build.cached import build_cached

    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = ManagedProcess(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        tmp / "moto.log",
        name="moto_server",
    )
    moto.start().wait_ready(f"{endpoint}/moto-api/", 30)
    try:
        artifact = ComponentCache(tmp / "cache").ensure(build_cached(BLOB_GUEST)).artifact
        spec = ModuleSpec(
            "blob", "bench", "1.0.0", str(artifact), 60.0, 256 << 20, 64 << 20, ["blobstore"]
        )
        node = {
            "blobstore": {"endpoint": endpoint, "access_key_id": "b", "secret_access_key": "b"},
            "module": [{"name": "blob", "namespace": "bench", "allowed_buckets": ["bench"]}],
        }
        settings = BlobstoreBinding.settings(node)
        host = WasmHost(
            [spec], "http://127.0.0.1:9", tmp / "scratch-blob", capabilities={"blobstore": settings}
        )
        body = json.dumps({"op": "bench", "bucket": "bench", "key": "guest", "n": n}).encode()

        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        source, sink = tmp / "direct.in", tmp / "direct.out"
        source.write_bytes(os.urandom(1 << 20))

        # one client for all rounds, as the binding keeps one per namespace
        loop = asyncio.new_event_loop()
        context = get_session().create_client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="b",
            aws_secret_access_key="b",
            config=AioConfig(s3={"addressing_style": "path"}),
        )
        s3 = loop.run_until_complete(context.__aenter__())

        async def put_get() -> float:
            started = time.perf_counter()
            for _ in range(n):
                with open(source, "rb") as f:  # noqa: ASYNC230  (tmpfs, as the binding)
                    await s3.put_object(Bucket="bench", Key="direct", Body=f)
                resp = await s3.get_object(Bucket="bench", Key="direct")
                with open(sink, "wb") as out:  # noqa: ASYNC230
                    async for chunk in resp["Body"].iter_chunks(256 << 10):
                        out.write(chunk)
            return (time.perf_counter() - started) / n * 1e3

        def direct() -> float:
            return loop.run_until_complete(put_get())

        import boto3

        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="b",
            aws_secret_access_key="b",
        ).create_bucket(Bucket="bench")

        def guest() -> float:
            out = host.run(spec.key, "POST", "/op", [], body)
            host.release()
            if out.status != 200 or b'"ok"' not in out.body:
                raise RuntimeError(f"/op bench answered {out.status}: {out.body[:300]!r}")
            return float(json.loads(out.body)["ok"]["put_get_ms"])

        guest_ms: list[float] = []
        direct_ms: list[float] = []
        guest(), direct()  # warm-up
        for r in range(rounds):
            for which in ("g", "d") if r % 2 == 0 else ("d", "g"):
                if which == "g":
                    guest_ms.append(guest())
                else:
                    direct_ms.append(direct())
        host.close()
        loop.run_until_complete(context.__aexit__(None, None, None))
        loop.close()
    finally:
        moto.stop()
    g, d = statistics.median(guest_ms), statistics.median(direct_ms)
    return {
        "blob_1mib_put_get_guest_ms": metric(g, "ms"),
        "blob_1mib_put_get_aiobotocore_direct_ms": metric(d, "ms"),
        "blob_1mib_put_get_guest_vs_direct": metric(g / d, "x", BLOB_GOAL_RATIO),
    }


def _llm_costs(tmp: Path, calls: int, rounds: int) -> dict[str, dict[str, object]]:
    """Median ms per complete(): from the guest, and with the SDK directly (same fake API)."""
    import asyncio
    import json
    import time

    import anthropic

    from runtime.engine.component_cache import ComponentCache
    from runtime.engine.host import WasmHost
    from runtime.engine.spec import ModuleSpec
    from tests.infra.fake_anthropic import FakeAnthropic
    from wrctl.build.cached import build_cached

    fake = FakeAnthropic()
    fake.start()
    try:
        artifact = ComponentCache(tmp / "cache").ensure(build_cached(LLM_GUEST)).artifact
        spec = ModuleSpec(
            "llm", "bench", "1.0.0", str(artifact), 60.0, 256 << 20, 64 << 20, ["llm"]
        )
        settings = {"llm": {"api_key": fake.api_key, "base_url": fake.base_url}, "workers": 1}
        host = WasmHost(
            [spec], "http://127.0.0.1:9", tmp / "scratch-llm", capabilities={"llm": settings}
        )
        guest: list[float] = []
        for i in range(rounds + 1):
            out = host.run(spec.key, "POST", "/bench", [], json.dumps({"n": calls}).encode())
            host.release()
            if out.status != 200:
                raise RuntimeError(f"/bench answered {out.status}: {out.body[:200]!r}")
            if i:  # the first round warms up
                guest.append(json.loads(out.body)["complete_ms"])

        async def direct() -> list[float]:
            client = anthropic.AsyncAnthropic(api_key=fake.api_key, base_url=fake.base_url)
            per: list[float] = []
            for i in range(rounds + 1):
                started = time.perf_counter()
                for _ in range(calls):
                    await client.messages.create(
                        model="claude-test-1",
                        max_tokens=10,
                        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                    )
                if i:
                    per.append((time.perf_counter() - started) / calls * 1e3)
            await client.close()
            return per

        sdk = asyncio.run(direct())
    finally:
        fake.stop()
    g, d = statistics.median(guest), statistics.median(sdk)
    return {
        "llm_complete_guest_ms": metric(g, "ms"),
        "llm_complete_sdk_direct_ms": metric(d, "ms"),
        "llm_complete_added_ms": metric(g - d, "ms"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer rounds")
    args = parser.parse_args()

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from runtime.engine.component_cache import ComponentCache
    from runtime.engine.host import WasmHost
    from runtime.engine.spec import ModuleSpec
    from wrctl.build.cached import build_cached

    class DropSpans(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    spans, rounds = (500, 5) if args.quick else (2000, 15)
    # Guest time is CPU time: on a shared machine the figures scale with the load, so say it.
    m: dict[str, dict[str, object]] = {"load_average_1m_at_start": metric(os.getloadavg()[0], "")}
    with tempfile.TemporaryDirectory(prefix="wr-bench-cap-") as tmpdir:
        tmp = Path(tmpdir)
        artifact = ComponentCache(tmp / "cache").ensure(build_cached(GUEST)).artifact
        spec = ModuleSpec(
            "tracer", "bench", "1.0.0", str(artifact), 60.0, 256 << 20, 64 << 20, ["tracing"]
        )
        host = WasmHost([spec], "http://127.0.0.1:9", tmp / "scratch", capabilities={"tracing": {}})
        _span_costs(host, spec.key, spans, 1)  # warm-up
        for name, value in _span_costs(host, spec.key, spans, rounds).items():
            m[f"span_open_close_{name}_noexport"] = metric(value, "us")

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(DropSpans(), schedule_delay_millis=200))
        trace.set_tracer_provider(provider)
        _span_costs(host, spec.key, spans, 1)
        for name, value in _span_costs(host, spec.key, spans, rounds).items():
            m[f"span_open_close_{name}_export"] = metric(value, "us", SPAN_GOAL_US)
        provider.shutdown()
        queries, db_rounds = (100, 5) if args.quick else (300, 11)
        m.update(_db_costs(tmp, queries, db_rounds))
        m.update(_blob_rows(tmp, rounds=3 if args.quick else 8, n=5 if args.quick else 10))
        m.update(_llm_costs(tmp, 50 if args.quick else 200, rounds))
    path = write_results("capabilities", m)
    print(f"\nwrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()

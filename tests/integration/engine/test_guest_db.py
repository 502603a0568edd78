"""The db capability in a real engine against the test PostgreSQL: typed round trips,
transactions, cursors, namespace isolation, typed errors, per-request limits, strict
parameters and the request deadline. The database password is a namespace secret, handed to
the engine at registration by a stand-in NodeService."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.db_provision import ensure_namespace
from runtime.engine.capabilities import DB_PASSWORD_SECRET
from tests.infra.pki import ClusterPki
from tests.infra.postgres import PostgresServer
from tests.infra.process import wait_until
from tests.integration.engine.conftest import Engine, module_toml
from tests.integration.engine.test_registration import FakeNode, serve_node

pytestmark = pytest.mark.slow

NAMESPACES = ("example", "other")


class DbNode(FakeNode):
    """Accepts the engine and hands it each namespace's database password."""

    def RegisterEngine(self, request: pb.RegisterEngineRequest, context: Any) -> Any:
        super().RegisterEngine(request, context)
        return pb.RegisterEngineResponse(
            accepted=True,
            secrets=[
                pb.NamespaceSecrets(namespace=ns, secrets={DB_PASSWORD_SECRET: f"pw-{ns}"})
                for ns in NAMESPACES
            ],
        )


@pytest.fixture(scope="module")
def db_dsn(postgres: PostgresServer) -> str:
    """A database with the two namespaces' roles and schemas (as `wrctl apply` makes them)."""
    dsn = postgres.create_database("wrtest_guest_db")

    async def provision() -> None:
        admin = await asyncpg.connect(dsn)
        try:
            for ns in NAMESPACES:
                await ensure_namespace(admin, ns, f"pw-{ns}")
        finally:
            await admin.close()

    asyncio.run(provision())
    return dsn


def admin_fetch(dsn: str, sql: str) -> list[Any]:
    async def run() -> list[Any]:
        conn = await asyncpg.connect(dsn)
        try:
            return list(await conn.fetch(sql))
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture
def db_node(pki: ClusterPki) -> Iterator[str]:
    server, port = serve_node(DbNode(), pki.node("node-test"))
    yield f"http://127.0.0.1:{port}"
    server.stop(0)


def database_toml(dsn: str, **keys: Any) -> str:
    lines = ["[database]", f'url = "{dsn}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    return "\n".join(lines) + "\n"


class DbGuest:
    """Calls to the with_db guest's routes."""

    def __init__(self, engine: Engine, module: str = "example.db") -> None:
        self.engine = engine
        self.module = module

    def post(self, route: str, spec: Any, module: str | None = None) -> tuple[int, Any]:
        status, _, body = self.engine.call(module or self.module, route, json.dumps(spec).encode())
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body.decode(errors="replace")

    def sql(self, sql: str, *params: Any, module: str | None = None, **spec: Any) -> Any:
        status, answer = self.post("/sql", {"sql": sql, "params": list(params), **spec}, module)
        assert status == 200, answer
        return answer


@pytest.fixture
def guest(  # type: ignore[no-untyped-def]
    components, db_node: str, db_dsn: str, start_engine: Callable[..., Engine]
) -> DbGuest:
    """An engine with the guest as example.db, example.slow (1 s deadline) and
    other.intruder. (db_node is set up first so the engine stops, and deregisters, first.)"""
    wasm = components["with_db"]
    engine = start_engine(
        database_toml(db_dsn, max_connections=70, statement_timeout_ms=1500)
        + module_toml("db", wasm, capabilities=["db"])
        + module_toml("slow", wasm, capabilities=["db"], request_timeout_secs=1.0)
        + module_toml("intruder", wasm, namespace="other", capabilities=["db"]),
        control=db_node,
    )
    g = DbGuest(engine)
    # the passwords arrive with registration, a moment after the engine is up
    wait_until(lambda: "rows" in g.sql("SELECT 1 AS one"), 30, "the database password")
    return g


def test_every_type_round_trips(guest: DbGuest) -> None:
    status, out = guest.post("/roundtrip", {})
    assert status == 200, out
    assert out.pop("inserted") == 1
    wrong = {name: v for name, v in out.items() if not v["same"]}
    assert not wrong
    assert out["n"]["got"] == "12345678901234567890.000000000123"
    assert out["tstz"]["got"] == "2024-02-29T12:30:45.123456+00:00"
    assert out["iv"]["got"] == [14, -3, 5000001]
    assert out["by"]["got"] == bytes(range(256)).hex()
    assert out["nul"]["got"] is None


def test_session_is_the_namespace_role_in_its_schema(guest: DbGuest) -> None:
    [row] = guest.sql("SELECT current_user AS u, current_setting('search_path') AS p")["rows"]
    assert row == {"u": "wr_ns_example", "p": "wr_ns_example"}
    # a column of a type the host does not map comes back as null
    assert guest.sql("SELECT '127.0.0.1'::inet AS a")["rows"] == [{"a": None}]


def test_transactions_commit_roll_back_and_what_is_left_open_is_rolled_back(
    guest: DbGuest, db_dsn: str
) -> None:
    def count(item: int) -> int:
        rows = guest.sql("SELECT count(*) AS n FROM tx_items WHERE id = $1", item)["rows"]
        return int(rows[0]["n"])

    assert guest.post("/tx", {"mode": "commit", "id": 1}) == (200, {"seen_inside": 1})
    assert count(1) == 1
    assert guest.post("/tx", {"mode": "raise", "id": 2}) == (
        200,
        {"raised": True, "seen_inside": 1},
    )
    assert count(2) == 0
    assert guest.post("/tx", {"mode": "rollback", "id": 3})[0] == 200
    assert count(3) == 0
    assert guest.post("/tx", {"mode": "leave", "id": 4}) == (200, {"left": True})
    assert count(4) == 0
    status, out = guest.post("/tx", {"mode": "after-error", "id": 5})
    assert status == 200 and out["error"] == "query" and "aborted" in out["message"]
    assert count(5) == 0
    status, out = guest.post("/tx", {"mode": "cursor-after-commit", "id": 6})
    assert status == 200 and out["error"] == "query" and "already committed" in out["message"]
    # nothing of ours stays idle in a transaction
    idle = (
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'wr_ns_example' "
        "AND state LIKE 'idle in transaction%'"
    )
    wait_until(lambda: admin_fetch(db_dsn, idle)[0][0] == 0, 10, "no idle transaction")


@pytest.mark.parametrize("in_tx", [True, False])
def test_a_cursor_reads_ten_thousand_rows(guest: DbGuest, in_tx: bool) -> None:
    status, out = guest.post("/cursor", {"n": 10_000, "in_tx": in_tx, "batch": 500})
    assert status == 200, out
    assert (out["count"], out["sum"]) == (10_000, 10_000 * 10_001 // 2)
    if in_tx:
        assert out["batches"] == 20


def test_a_result_over_the_row_limit_is_too_many(guest: DbGuest) -> None:
    out = guest.sql("SELECT g FROM generate_series(1, 10001) AS g")
    assert out["error"] == "too-many" and "10000 rows" in out["message"]
    assert len(guest.sql("SELECT g FROM generate_series(1, 10000) AS g")["rows"]) == 10_000
    out = guest.sql("SELECT repeat('x', 1048576) AS big FROM generate_series(1, 9)")
    assert out["error"] == "too-large" and "8 MiB" in out["message"]


def test_a_namespace_cannot_reach_another_namespaces_tables(guest: DbGuest) -> None:
    guest.sql("CREATE TABLE IF NOT EXISTS secrets (v text)", mode="execute")
    guest.sql("INSERT INTO secrets VALUES ('mine')", mode="execute")
    intruder = "other.intruder"
    attempts = [
        ("SELECT * FROM wr_ns_example.secrets", {}),
        ("INSERT INTO wr_ns_example.secrets VALUES ('x')", {"mode": "execute"}),
        ("SET search_path = wr_ns_example; SELECT * FROM secrets", {"mode": "execute"}),
        ("SET ROLE wr_ns_example", {"mode": "execute"}),
        ("SET SESSION AUTHORIZATION wr_ns_example", {"mode": "execute"}),
        ("ALTER TABLE wr_ns_example.secrets RENAME TO gone", {"mode": "execute"}),
        ("CREATE TABLE public.shared (v text)", {"mode": "execute"}),
    ]
    for sql, spec in attempts:
        out = guest.sql(sql, module=intruder, **spec)
        assert "error" in out, (sql, out)
        assert out["error"] in {"query", "syntax"}, (sql, out)
        assert out["message"][:5] in {"42501", "42P01", "3F000", "22023"}, (sql, out)
    # a session setting does not outlive its request: the next is back in its own schema
    guest.sql("SET search_path = public", module=intruder, mode="execute")
    [row] = guest.sql("SELECT current_setting('search_path') AS p", module=intruder)["rows"]
    assert row["p"] == "wr_ns_other"
    assert guest.sql("SELECT v FROM secrets")["rows"] == [{"v": "mine"}]


def test_typed_errors(guest: DbGuest) -> None:
    out = guest.sql("SELEC 1")
    assert out["error"] == "syntax" and out["message"].startswith("42601:")
    assert guest.sql("SELECT * FROM nowhere")["error"] == "syntax"
    guest.sql(
        "CREATE TABLE IF NOT EXISTS items (name text CONSTRAINT items_name_key UNIQUE, "
        "price int CONSTRAINT price_positive CHECK (price > 0))",
        mode="execute",
    )
    insert = "INSERT INTO items VALUES ($1, $2)"
    guest.sql(insert, "pen", 1, mode="execute")
    out = guest.sql(insert, "pen", 2, mode="execute")
    assert (out["error"], out["constraint"]) == ("constraint-violation", "items_name_key")
    assert out["message"].startswith("23505:")
    out = guest.sql(insert, "cup", -1, mode="execute", in_tx=True)
    assert (out["error"], out["constraint"]) == ("constraint-violation", "price_positive")
    out = guest.sql("SELECT pg_sleep(5)")  # statement_timeout_ms = 1500
    assert out["error"] == "timeout" and out["message"].startswith("57014:")


def test_per_request_limits_and_the_engine_lives(guest: DbGuest) -> None:
    pids = guest.engine.worker_pids()
    status, out = guest.post("/limits", {"what": "tx", "n": 65})
    assert status == 200, out
    assert (out["opened"], out["error"]) == (64, "too-many")
    assert "over 64 open transactions" in out["message"]
    status, out = guest.post("/limits", {"what": "cursor", "n": 257})
    assert status == 200, out
    assert (out["opened"], out["error"]) == (256, "too-many")
    assert "over 256 open cursors" in out["message"]
    assert guest.sql("SELECT 2 AS two")["rows"] == [{"two": 2}]
    assert guest.engine.worker_pids() == pids


def test_bad_parameters_are_refused_naming_the_parameter(guest: DbGuest) -> None:
    status, out = guest.post("/bad-params", {})
    assert status == 200, out
    kinds = {name: v["error"] for name, v in out.items()}
    assert set(kinds.values()) == {"DbError_InvalidParameter"}, json.dumps(out, indent=1)
    assert "$1 (jsonb): malformed JSON" in out["json"]["message"]
    assert "$1 (numeric)" in out["numeric"]["message"]
    assert "$1 (timestamp)" in out["timestamp"]["message"]
    assert "$1 (jsonb-array): element 3" in out["array"]["message"]
    assert "$2" in out["second"]["message"]
    assert "argument $1: 'seven'" in out["text-for-int"]["message"]
    assert "expected a timestamp value, got int" in out["int8-for-timestamp"]["message"]
    assert "out of int16 range" in out["overflow-int8-into-int2"]["message"]
    assert "2 arguments" in out["count"]["message"]
    assert guest.sql("SELECT 3 AS three")["rows"] == [{"three": 3}]


@pytest.mark.parametrize("in_tx", [False, True])
def test_a_query_past_the_deadline_is_cancelled_on_the_server(
    guest: DbGuest, db_dsn: str, in_tx: bool
) -> None:
    """The statement would sleep 30 s (the guest lifts its statement timeout first): only
    the cancellation at the 1 s deadline ends it that soon."""
    sleep = {"sql": "SET statement_timeout = 0; SELECT pg_sleep(30)", "mode": "execute"}
    sleeping = (
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'wr_ns_example' "
        "AND state = 'active' AND query LIKE '%pg_sleep(30)%'"
    )
    left_open = (
        "SELECT count(*) FROM pg_stat_activity WHERE usename = 'wr_ns_example' "
        "AND (state = 'active' OR state LIKE 'idle in transaction%')"
    )
    status, body = guest.post("/sql", {**sleep, "in_tx": in_tx}, "example.slow")
    assert status == 504 and "deadline of 1 s exceeded" in str(body)
    wait_until(lambda: admin_fetch(db_dsn, sleeping)[0][0] == 0, 10, "the sleep to be cancelled")
    wait_until(lambda: admin_fetch(db_dsn, left_open)[0][0] == 0, 10, "no open transaction")
    assert guest.sql("SELECT 4 AS four", module="example.slow")["rows"] == [{"four": 4}]
    assert guest.sql("SELECT 5 AS five")["rows"] == [{"five": 5}]


def test_without_the_password_calls_fail_with_a_connection_error(  # type: ignore[no-untyped-def]
    components, start_engine: Callable[..., Engine], db_dsn: str
) -> None:
    engine = start_engine(
        database_toml(db_dsn) + module_toml("db", components["with_db"], capabilities=["db"])
    )
    out = DbGuest(engine).sql("SELECT 1")
    assert out["error"] == "connection"
    assert "'wr-db-password'" in out["message"] and "namespace example" in out["message"]


def test_query_cost_in_the_guest(guest: DbGuest) -> None:
    guest.sql(
        "CREATE TABLE IF NOT EXISTS bench_items (id int8 PRIMARY KEY, name text)", mode="execute"
    )
    guest.sql("INSERT INTO bench_items VALUES (1, 'one') ON CONFLICT DO NOTHING", mode="execute")
    status, _, body = guest.engine.call("example.db", "/bench", b"50")
    assert status == 200, body
    cost = json.loads(body)
    assert 0 < cost["raw_us"] < 20_000 and 0 < cost["sdk_us"] < 20_000  # bench/ measures the goal

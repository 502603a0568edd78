"""A guest for the db capability: typed round trips, transactions, cursors, limits, errors,
raw (unvalidated) parameters and the cost of a query. Without a grant the engine refuses it."""

import contextlib
import datetime as dt
import json
import time
import uuid
from decimal import Decimal
from typing import Any

from componentize_py_types import Err
from wit_world.imports import database as raw

from wr_sdk import Module, Request, db

app = Module()


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, db.Interval):
        return [value.months, value.days, value.microseconds]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _failure(exc: db.DbError) -> dict[str, Any]:
    return {"error": exc.kind, "message": exc.message, "constraint": exc.constraint}


_WRAP = {
    "int2": db.Int2,
    "int4": db.Int4,
    "float4": db.Float4,
    "oid": db.Oid,
    "numeric": db.Numeric,
    "json": db.Json,
    "uuid": uuid.UUID,
    "bytes": bytes.fromhex,
}


def _param(spec: Any) -> Any:
    """A parameter given as JSON: a plain value, or [kind, value] for a typed one."""
    if isinstance(spec, list) and len(spec) == 2 and spec[0] in _WRAP:
        return _WRAP[spec[0]](spec[1])
    return spec


@app.route("/sql")
def sql(request: Request) -> dict[str, Any]:
    """{"sql", "params", "mode": "query" | "execute", "in_tx": bool}: the rows or the error."""
    spec = json.loads(request.body)
    params = [_param(p) for p in spec.get("params", [])]
    execute = spec.get("mode") == "execute"
    try:
        if spec.get("in_tx"):
            with db.transaction() as t:
                got: Any = (
                    t.execute(spec["sql"], params) if execute else t.query(spec["sql"], params)
                )
        else:
            got = db.execute(spec["sql"], params) if execute else db.query(spec["sql"], params)
    except db.DbError as exc:
        return _failure(exc)
    if execute:
        return {"count": got}
    return {"rows": [{k: _jsonable(v) for k, v in row.items()} for row in got]}


TZ = dt.UTC
VALUES: dict[str, tuple[str, Any]] = {
    # column: (SQL type, value sent)
    "b": ("bool", True),
    "i2": ("int2", db.Int2(-32768)),
    "i4": ("int4", db.Int4(2147483647)),
    "i8": ("int8", -9223372036854775808),
    "f4": ("float4", db.Float4(1.5)),
    "f8": ("float8", 3.141592653589793),
    "t": ("text", "grüße ☃"),
    "by": ("bytea", bytes(range(256))),
    "tstz": ("timestamptz", dt.datetime(2024, 2, 29, 12, 30, 45, 123456, tzinfo=TZ)),
    "ts": ("timestamp", dt.datetime(1969, 7, 20, 20, 17, 40)),
    "d": ("date", dt.date(1900, 1, 1)),
    "tm": ("time", dt.time(23, 59, 59, 999999)),
    "iv": ("interval", db.Interval(14, -3, 5_000_001)),
    "n": ("numeric", Decimal("12345678901234567890.000000000123")),
    "u": ("uuid", uuid.UUID("12345678-9abc-def0-1234-56789abcdef0")),
    "j": ("json", {"a": [1, 2, {"b": None}]}),
    "jb": ("jsonb", {"k": "v", "n": 1.5}),
    "o": ("oid", db.Oid(4294967295)),
    "ab": ("bool[]", db.Array("bool", [True, None, False])),
    "ai2": ("int2[]", db.Array("int2", [1, None, -2])),
    "ai4": ("int4[]", db.Array("int4", [7, None])),
    "ai8": ("int8[]", db.Array("int8", [2**62, None])),
    "af4": ("float4[]", db.Array("float4", [0.25, None])),
    "af8": ("float8[]", db.Array("float8", [1e300, None])),
    "at": ("text[]", db.Array("text", ["x", None, ""])),
    "atstz": ("timestamptz[]", db.Array("timestamptz", [dt.datetime(2000, 1, 1, tzinfo=TZ), None])),
    "ats": ("timestamp[]", db.Array("timestamp", [dt.datetime(2038, 1, 19, 3, 14, 8)])),
    "au": ("uuid[]", db.Array("uuid", [uuid.UUID(int=1), None])),
    "ajb": ("jsonb[]", db.Array("jsonb", [{"x": 1}, None, [2]])),
    "nul": ("int4", None),
}


def _expected(value: Any) -> Any:
    if isinstance(value, (db.Int2, db.Int4, db.Float4, db.Oid)):
        return value.value
    if isinstance(value, db.Array):
        return list(value.items)
    return value


@app.route("/roundtrip")
def roundtrip(request: Request) -> dict[str, Any]:
    """Every mapped type into a table and back: {column: {sent, got, same}}."""
    columns = ", ".join(f"{name} {kind}" for name, (kind, _) in VALUES.items())
    db.execute("DROP TABLE IF EXISTS everything")
    db.execute(f"CREATE TABLE everything ({columns})")
    names = list(VALUES)
    marks = ", ".join(f"${i + 1}" for i in range(len(names)))
    inserted = db.execute(
        f"INSERT INTO everything ({', '.join(names)}) VALUES ({marks})",
        [VALUES[n][1] for n in names],
    )
    [row] = db.query("SELECT * FROM everything")
    out: dict[str, Any] = {"inserted": inserted}
    for name in names:
        sent, got = _expected(VALUES[name][1]), row[name]
        out[name] = {"sent": _jsonable(sent), "got": _jsonable(got), "same": sent == got}
    return out


@app.route("/tx")
def tx(request: Request) -> dict[str, Any]:
    """{"mode": commit | rollback | raise | leave | after-error, "id": n} on tx_items."""
    spec = json.loads(request.body)
    mode, item = spec["mode"], spec["id"]
    db.execute("CREATE TABLE IF NOT EXISTS tx_items (id int8 PRIMARY KEY)")
    if mode == "leave":  # begun and never ended: the engine rolls it back
        t = db.transaction()
        t.execute("INSERT INTO tx_items VALUES ($1)", [item])
        _kept.append(t)
        return {"left": True}
    if mode == "cursor-after-commit":  # a cursor outliving its transaction: an error
        with db.transaction() as t:
            rows = t.cursor("SELECT 1 AS one")
        try:
            list(rows)
        except db.QueryError as exc:
            return _failure(exc)
        return {"read": True}
    if mode == "after-error":  # an error aborts the transaction: commit then fails
        t = db.transaction()
        t.execute("INSERT INTO tx_items VALUES ($1)", [item])
        with contextlib.suppress(db.SqlSyntaxError):
            t.execute("SELECT * FROM no_such_table")
        try:
            t.commit()
        except db.DbError as exc:
            return _failure(exc)
        return {"committed": True}
    try:
        with db.transaction() as t:
            t.execute("INSERT INTO tx_items VALUES ($1)", [item])
            seen = t.query("SELECT count(*) AS n FROM tx_items WHERE id = $1", [item])[0]["n"]
            if mode == "raise":
                raise KeyError("boom")
            if mode == "rollback":
                t.rollback()
    except KeyError:
        return {"raised": True, "seen_inside": seen}
    return {"seen_inside": seen}


_kept: list[Any] = []


@app.route("/cursor")
def cursor(request: Request) -> dict[str, Any]:
    """Iterate N generated rows through a cursor, in a transaction or on its own."""
    spec = json.loads(request.body)
    sql = "SELECT g AS n, repeat('x', 10) AS pad FROM generate_series(1, $1) AS g"
    count = total = batches = 0
    if spec.get("in_tx"):
        with db.transaction() as t:
            rows = t.cursor(sql, [db.Int4(spec["n"])], batch=spec.get("batch", 500))
            for batch in rows.batches():
                batches += 1
                count += len(batch)
                total += sum(r["n"] for r in batch)
    else:
        for row in db.cursor(sql, [db.Int4(spec["n"])], batch=spec.get("batch", 500)):
            count += 1
            total += row["n"]
    return {"count": count, "sum": total, "batches": batches}


@app.route("/limits")
def limits(request: Request) -> dict[str, Any]:
    """Open N transactions or N cursors (kept open) and report the first failure."""
    spec = json.loads(request.body)
    held: list[Any] = []
    try:
        if spec["what"] == "tx":
            for _ in range(spec["n"]):
                held.append(db.transaction())
        else:
            with db.transaction() as t:
                for _ in range(spec["n"]):
                    held.append(t.cursor("SELECT 1"))
    except db.DbError as exc:
        return {"opened": len(held), **_failure(exc)}
    return {"opened": len(held)}


def _raw_error(call: Any) -> dict[str, Any]:
    try:
        call()
    except Err as exc:
        err = exc.value
        value = err.value
        text = value.message if hasattr(value, "message") else str(value)
        return {"error": type(err).__name__, "message": text}
    return {"error": None}


@app.route("/bad-params")
def bad_params(request: Request) -> dict[str, Any]:
    """Values the SDK would not send, straight through the binding."""
    P = raw
    cases = {
        "json": ("SELECT $1::jsonb AS v", [P.PgValue_Jsonb("{not json")]),
        "numeric": ("SELECT $1::numeric AS v", [P.PgValue_Numeric("12x")]),
        "timestamp": ("SELECT $1::timestamp AS v", [P.PgValue_Timestamp(-(2**63))]),
        "date": ("SELECT $1::date AS v", [P.PgValue_Date(-(2**31))]),
        "time": ("SELECT $1::time AS v", [P.PgValue_Time(86_400_000_001)]),
        "array": (
            "SELECT $1::jsonb[] AS v",
            [P.PgValue_JsonbArray(["1", None, "{oops"])],
        ),
        "text-for-int": ("SELECT $1::int4 + 1 AS v", [P.PgValue_Text("seven")]),
        "int8-for-timestamp": ("SELECT $1::timestamp AS v", [P.PgValue_Int8(5)]),
        "overflow-int8-into-int2": ("SELECT $1::int2 AS v", [P.PgValue_Int8(70000)]),
        "count": ("SELECT $1::int4 + $2 AS v", [P.PgValue_Int4(1)]),
        "second": (
            "SELECT $1::text || $2::text AS v",
            [P.PgValue_Text("a"), P.PgValue_Uuid((1, 2))],
        ),
    }
    return {name: _raw_error(lambda s=s, p=p: raw.query(s, p)) for name, (s, p) in cases.items()}


@app.route("/bench")
def bench(request: Request) -> dict[str, float]:
    """Guest-side microseconds per one-row query through the SDK and the raw binding."""
    n = int(request.body.decode() or "100")
    sql = "SELECT id, name FROM bench_items WHERE id = $1"
    db.query(sql, [1])
    started = time.perf_counter()
    for _ in range(n):
        db.query(sql, [1])
    sdk_us = (time.perf_counter() - started) / n * 1e6
    params = [raw.PgValue_Int8(1)]
    started = time.perf_counter()
    for _ in range(n):
        raw.query(sql, params)
    raw_us = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    for _ in range(max(1, n // 10)):
        raw.query(ROWS100, [])
    raw100_us = (time.perf_counter() - started) / max(1, n // 10) * 1e6
    return {"sdk_us": sdk_us, "raw_us": raw_us, "raw_100_rows_us": raw100_us}


ROWS100 = "SELECT g AS id, 'name ' || g AS name FROM generate_series(1, 100) AS g"


@app.route("/")
def index(request: Request) -> str:
    return "db guest"

"""PostgreSQL from a module (the `db` capability): your namespace's own schema.

Grant it in cluster.toml (`capabilities = ["db"]` on the module) and build with it
(`capabilities = ["db"]` in guest.toml, or `wrctl build --capability db`).

    from wr_sdk import db

    rows = db.query("SELECT id, name FROM items WHERE price < $1", [10])
    for row in rows:
        print(row["id"], row["name"])          # rows are dicts: column name -> value

    db.execute("INSERT INTO items (name, price) VALUES ($1, $2)", ["pen", 2.5])  # -> 1

    with db.transaction() as tx:               # commits, or rolls back on an exception
        tx.execute("UPDATE stock SET n = n - 1 WHERE id = $1", [item_id])
        for row in tx.cursor("SELECT * FROM log ORDER BY id", batch=500):
            ...

Parameters are bound as $1, $2, ... Python values map to PostgreSQL types by their type:
None -> NULL, bool -> bool, int -> int8, float -> float8, str -> text, bytes -> bytea,
datetime -> timestamptz (aware) or timestamp (naive), date -> date, time -> time,
timedelta -> interval, Decimal -> numeric, uuid.UUID -> uuid, dict or list -> jsonb. For the
rest use a wrapper: `db.Int4(5)`, `db.Int2(1)`, `db.Float4(0.5)`, `db.Oid(16)`,
`db.Json("raw json text")`, `db.Numeric("1.50")`, `db.Interval(months, days, micros)`,
`db.Array("int4", [1, None, 3])`. Results come back the same way (numeric as Decimal, json
parsed; a column of a type the host does not map is None).

A failed call raises a `DbError` subclass whose `.kind` is the WIT error case:
`SqlSyntaxError`, `ConstraintViolation` (`.constraint` is the constraint's name), `DbTimeout`,
`TooMany` (over 64 open transactions, 256 cursors or 10 000 rows in one result: use a
cursor), `TooLarge`, `InvalidParameter`, `DbConnectionError`, `QueryError`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType
from typing import Any, NoReturn

from wr_sdk._host import GuestOnly

try:
    from componentize_py_types import Err
    from wit_world.imports import database as _db
except ImportError:  # a world without the db capability, or not in a guest at all
    _db = None

Row = dict[str, Any]
_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_TZ = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_EPOCH_DATE = dt.date(1970, 1, 1)
_MASK64 = (1 << 64) - 1


# ---- errors ------------------------------------------------------------------------------


class DbError(Exception):
    """A database call that failed; `kind` is the WIT db-error case."""

    kind = "query"

    def __init__(self, message: str, constraint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.constraint = constraint


class DbConnectionError(DbError):
    """No connection: the database is down or the namespace's password not provisioned yet."""

    kind = "connection"


class QueryError(DbError):
    """The server rejected the statement (any reason without a class of its own)."""

    kind = "query"


class SqlSyntaxError(DbError):
    """The SQL does not parse, or names a table or column that does not exist."""

    kind = "syntax"


class ConstraintViolation(DbError):
    """A unique, check, foreign key or not-null constraint; `.constraint` is its name."""

    kind = "constraint-violation"


class DbTimeout(DbError):
    """The statement ran past the statement timeout."""

    kind = "timeout"


class TooMany(DbError):
    """Over a per-request limit: open transactions, open cursors, rows in one result."""

    kind = "too-many"


class TooLarge(DbError):
    """One result over the host's byte limit: read it with a cursor."""

    kind = "too-large"


class InvalidParameter(DbError):
    """A parameter that does not fit its type; the message names it ($1, $2, ...)."""

    kind = "invalid-parameter"


_ERRORS: dict[str, type[DbError]] = {
    "Connection": DbConnectionError,
    "Query": QueryError,
    "Syntax": SqlSyntaxError,
    "ConstraintViolation": ConstraintViolation,
    "Timeout": DbTimeout,
    "TooMany": TooMany,
    "TooLarge": TooLarge,
    "InvalidParameter": InvalidParameter,
}


def _raise(err: Any) -> NoReturn:
    case = type(err).__name__.rpartition("_")[2]
    cls = _ERRORS.get(case, DbError)
    if cls is ConstraintViolation:
        raise cls(err.value.message, constraint=err.value.name) from None
    raise cls(str(err.value)) from None


def _need_db() -> Any:
    if _db is None:
        raise GuestOnly(
            "wr_sdk.db needs a component built with the db capability "
            '(capabilities = ["db"] in guest.toml)'
        )
    return _db


def _call(func: Callable[..., Any], *args: Any) -> Any:
    try:
        return func(*args)
    except Err as exc:
        _raise(exc.value)


# ---- typed wrappers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Int2:
    """A smallint parameter: `db.Int2(7)`."""

    value: int


@dataclass(frozen=True)
class Int4:
    """An integer parameter: `db.Int4(42)` (a plain int is sent as bigint)."""

    value: int


@dataclass(frozen=True)
class Float4:
    """A real parameter: `db.Float4(0.5)`."""

    value: float


@dataclass(frozen=True)
class Oid:
    """An oid parameter: `db.Oid(16)`."""

    value: int


@dataclass(frozen=True)
class Numeric:
    """An exact decimal given as text: `db.Numeric("19.99")` (Decimal works too)."""

    value: str


@dataclass(frozen=True)
class Json:
    """JSON text sent as is: `db.Json('{"a": 1}')` (a dict or list is serialised for you)."""

    text: str


@dataclass(frozen=True)
class Interval:
    """An interval as PostgreSQL keeps it: `db.Interval(months=1, days=2, microseconds=0)`."""

    months: int
    days: int
    microseconds: int


@dataclass(frozen=True)
class Array:
    """A one-dimensional array: `db.Array("int4", [1, None, 3])`. Element types: bool, int2,
    int4, int8, float4, float8, text, timestamptz, timestamp, uuid, jsonb."""

    element: str
    items: Sequence[Any]


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _uuid(value: uuid.UUID) -> tuple[int, int]:
    return value.int >> 64, value.int & _MASK64


def _to_wit(value: Any) -> Any:
    """The WIT pg-value of one Python parameter."""
    d = _need_db()
    if value is None:
        return d.PgValue_Null()
    if isinstance(value, bool):
        return d.PgValue_Boolean(value)
    if isinstance(value, int):
        return d.PgValue_Int8(value)
    if isinstance(value, float):
        return d.PgValue_Float8(value)
    if isinstance(value, str):
        return d.PgValue_Text(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return d.PgValue_Bytea(bytes(value))
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return d.PgValue_Timestamp(_micros(value - _EPOCH))
        return d.PgValue_Timestamptz(_micros(value - _EPOCH_TZ))
    if isinstance(value, dt.date):
        return d.PgValue_Date((value - _EPOCH_DATE).days)
    if isinstance(value, dt.time):
        return d.PgValue_Time(
            ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
        )
    if isinstance(value, dt.timedelta):
        rest = _micros(value) - value.days * 86_400_000_000
        return d.PgValue_Interval(d.PgInterval(0, value.days, rest))
    if isinstance(value, Decimal):
        return d.PgValue_Numeric(str(value))
    if isinstance(value, uuid.UUID):
        return d.PgValue_Uuid(_uuid(value))
    if isinstance(value, (dict, list)):
        return d.PgValue_Jsonb(json.dumps(value))
    wrapped = _WRAPPERS.get(type(value))
    if wrapped is not None:
        return wrapped(d, value)
    raise TypeError(f"no PostgreSQL type for a {type(value).__name__} parameter (see wr_sdk.db)")


def _array(d: Any, value: Array) -> Any:
    element = value.element
    make = _ARRAY_CASES.get(element)
    if make is None:
        raise ValueError(f"db.Array: unknown element type {element!r}")
    convert = _ELEMENT_CONVERT.get(element, lambda x: x)
    return getattr(d, make)([None if x is None else convert(x) for x in value.items])


_ARRAY_CASES = {
    "bool": "PgValue_BoolArray",
    "int2": "PgValue_Int2Array",
    "int4": "PgValue_Int4Array",
    "int8": "PgValue_Int8Array",
    "float4": "PgValue_Float4Array",
    "float8": "PgValue_Float8Array",
    "text": "PgValue_TextArray",
    "timestamptz": "PgValue_TimestamptzArray",
    "timestamp": "PgValue_TimestampArray",
    "uuid": "PgValue_UuidArray",
    "jsonb": "PgValue_JsonbArray",
}
_ELEMENT_CONVERT: dict[str, Callable[[Any], Any]] = {
    "timestamptz": lambda v: _micros(v - _EPOCH_TZ) if isinstance(v, dt.datetime) else v,
    "timestamp": lambda v: _micros(v - _EPOCH) if isinstance(v, dt.datetime) else v,
    "uuid": lambda v: _uuid(v) if isinstance(v, uuid.UUID) else v,
    "jsonb": lambda v: v if isinstance(v, str) else json.dumps(v),
}
_WRAPPERS: dict[type, Callable[[Any, Any], Any]] = {
    Int2: lambda d, v: d.PgValue_Int2(v.value),
    Int4: lambda d, v: d.PgValue_Int4(v.value),
    Float4: lambda d, v: d.PgValue_Float4(v.value),
    Oid: lambda d, v: d.PgValue_Oid(v.value),
    Numeric: lambda d, v: d.PgValue_Numeric(v.value),
    Json: lambda d, v: d.PgValue_Jsonb(v.text),
    Interval: lambda d, v: d.PgValue_Interval(d.PgInterval(v.months, v.days, v.microseconds)),
    Array: _array,
}


def _params(params: Sequence[Any] | None) -> list[Any]:
    return [_to_wit(p) for p in params] if params else []


# ---- results -----------------------------------------------------------------------------


def _timestamp(micros: int, base: dt.datetime) -> dt.datetime:
    try:
        return base + dt.timedelta(microseconds=micros)
    except OverflowError:  # 'infinity' and dates Python cannot hold
        edge = dt.datetime.max if micros > 0 else dt.datetime.min
        return edge.replace(tzinfo=base.tzinfo)


def _time(micros: int) -> dt.time:
    if micros >= 86_400_000_000:
        return dt.time.max
    seconds, us = divmod(micros, 1_000_000)
    return dt.time(seconds // 3600, seconds // 60 % 60, seconds % 60, us)


def _date(days: int) -> dt.date:
    try:
        return _EPOCH_DATE + dt.timedelta(days=days)
    except OverflowError:
        return dt.date.max if days > 0 else dt.date.min


def _each(items: list[Any], convert: Callable[[Any], Any]) -> list[Any]:
    return [None if x is None else convert(x) for x in items]


_FROM: dict[str, Callable[[Any], Any]] = {
    "Null": lambda v: None,
    "Boolean": lambda v: v.value,
    "Int2": lambda v: v.value,
    "Int4": lambda v: v.value,
    "Int8": lambda v: v.value,
    "Float4": lambda v: v.value,
    "Float8": lambda v: v.value,
    "Text": lambda v: v.value,
    "Bytea": lambda v: bytes(v.value),
    "Timestamptz": lambda v: _timestamp(v.value, _EPOCH_TZ),
    "Timestamp": lambda v: _timestamp(v.value, _EPOCH),
    "Date": lambda v: _date(v.value),
    "Time": lambda v: _time(v.value),
    "Interval": lambda v: Interval(v.value.months, v.value.days, v.value.microseconds),
    "Numeric": lambda v: Decimal(v.value),
    "Uuid": lambda v: uuid.UUID(int=(v.value[0] << 64) | v.value[1]),
    "Jsonb": lambda v: json.loads(v.value),
    "Oid": lambda v: v.value,
    "BoolArray": lambda v: list(v.value),
    "Int2Array": lambda v: list(v.value),
    "Int4Array": lambda v: list(v.value),
    "Int8Array": lambda v: list(v.value),
    "Float4Array": lambda v: list(v.value),
    "Float8Array": lambda v: list(v.value),
    "TextArray": lambda v: list(v.value),
    "TimestamptzArray": lambda v: _each(v.value, lambda x: _timestamp(x, _EPOCH_TZ)),
    "TimestampArray": lambda v: _each(v.value, lambda x: _timestamp(x, _EPOCH)),
    "UuidArray": lambda v: _each(v.value, lambda x: uuid.UUID(int=(x[0] << 64) | x[1])),
    "JsonbArray": lambda v: _each(v.value, json.loads),
}
_BY_CLASS: dict[type, Callable[[Any], Any]] = {}


def _value(v: Any) -> Any:
    convert = _BY_CLASS.get(type(v))
    if convert is None:  # keyed by the bindings' classes on first sight (PgValue_Int4, ...)
        convert = _FROM[type(v).__name__.rpartition("_")[2]]
        _BY_CLASS[type(v)] = convert
    return convert(v)


def _rows(raw: list[Any]) -> list[Row]:
    return [{c.name: _value(c.value) for c in row.columns} for row in raw]


# ---- calls -------------------------------------------------------------------------------


def query(sql: str, params: Sequence[Any] | None = None) -> list[Row]:
    """Run a SELECT (or anything returning rows) and return every row as a dict.

        rows = db.query("SELECT name, price FROM items WHERE id = $1", [7])
        rows[0]["price"]   # Decimal('2.50') for a numeric column

    At most 10 000 rows: more raise TooMany (use `db.cursor`)."""
    return _rows(_call(_need_db().query, sql, _params(params)))


def execute(sql: str, params: Sequence[Any] | None = None) -> int:
    """Run an INSERT / UPDATE / DELETE (or DDL) and return the number of rows it affected.

        db.execute("DELETE FROM items WHERE id = $1", [7])   # -> 1

    Without parameters the SQL may hold several statements separated by `;`."""
    count: int = _call(_need_db().execute, sql, _params(params))
    return count


class Cursor:
    """Rows of a query read in batches from a server-side cursor; iterate over it.

    for row in db.cursor("SELECT * FROM events ORDER BY id", batch=1000):
        handle(row)
    """

    def __init__(self, handle: Any, batch: int) -> None:
        self._handle = handle
        self._batch = max(1, min(batch, 1000))

    def batches(self) -> Iterator[list[Row]]:
        """The rows a batch at a time (each a list of at most `batch` rows)."""
        while self._handle is not None:
            rows = _rows(_call(self._handle.next_batch, self._batch))
            if not rows:
                self.close()
                return
            yield rows

    def __iter__(self) -> Iterator[Row]:
        for batch in self.batches():
            yield from batch

    def close(self) -> None:
        """Close the cursor now (idempotent); cursors still open end with the request."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.__exit__(None, None, None)

    def __enter__(self) -> Cursor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def cursor(sql: str, params: Sequence[Any] | None = None, batch: int = 500) -> Cursor:
    """A cursor over a query's rows, in a read transaction of its own (see Cursor)."""
    return Cursor(_call(_need_db().query_stream, sql, _params(params)), batch)


class Transaction:
    """An open transaction holding one connection; use it in a `with` block:

        with db.transaction() as tx:
            tx.execute("INSERT INTO orders (id) VALUES ($1)", [order_id])
            tx.execute("UPDATE stock SET n = n - 1 WHERE item = $1", [item])

    The block commits when it ends normally and rolls back on an exception. A request may
    hold at most 64 open at once; what a request leaves open is rolled back when it ends."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def _live(self) -> Any:
        if self._handle is None:
            raise RuntimeError("this transaction is already committed or rolled back")
        return self._handle

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[Row]:
        """db.query inside this transaction."""
        return _rows(_call(self._live().query, sql, _params(params)))

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> int:
        """db.execute inside this transaction."""
        count: int = _call(self._live().execute, sql, _params(params))
        return count

    def cursor(self, sql: str, params: Sequence[Any] | None = None, batch: int = 500) -> Cursor:
        """A cursor inside this transaction (it ends with the transaction)."""
        return Cursor(_call(self._live().query_stream, sql, _params(params)), batch)

    def commit(self) -> None:
        """Commit now; raises QueryError if an earlier error aborted the transaction."""
        self._end(True)

    def rollback(self) -> None:
        """Roll back now."""
        self._end(False)

    def _end(self, commit: bool) -> None:
        handle, self._handle = self._live(), None
        try:
            _call(handle.commit if commit else handle.rollback)
        finally:
            handle.__exit__(None, None, None)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._handle is None:
            return
        self._end(exc is None)


def transaction() -> Transaction:
    """Begin a transaction (see Transaction)."""
    return Transaction(_call(_need_db().begin_transaction))

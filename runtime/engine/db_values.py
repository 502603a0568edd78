"""Typed values of the `db` capability: WIT `pg-value` cases to asyncpg arguments and result
columns back to `pg-value` cases. Pure Python (no wasmtime), so it is unit-tested alone.

Parameters are converted strictly: a value that does not fit is a `BadParameter` naming the
parameter ($1, $2, ...) and what was expected, never a silent coercion. Time values keep their
WIT form (microseconds or days since the Unix epoch) and cross asyncpg through codecs in
"tuple" format (`CODECS`), so no Python datetime (with its narrower range) sits in between,
and a time case bound to a parameter of another type is refused by the codec. On the way out a
column of a type not in `COLUMN_CASES` becomes `null` (logged once per type by the binding).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from typing import Any, NamedTuple

# microseconds / days between PostgreSQL's epoch (2000-01-01) and the Unix epoch
PG_EPOCH_MICROS = 946_684_800_000_000
PG_EPOCH_DAYS = 10_957
# PostgreSQL's timestamp range (4713 BC .. 294276 AD), as Unix microseconds
MIN_TIMESTAMP = -211_813_488_000_000_000 + PG_EPOCH_MICROS
MAX_TIMESTAMP = 9_223_371_331_200_000_000 + PG_EPOCH_MICROS - 1
# PostgreSQL's date range, as Unix days (Julian day 0 .. DATE_END_JULIAN)
MIN_DATE = -2_451_545 + PG_EPOCH_DAYS
MAX_DATE = 2_147_483_494 - 2_451_545 + PG_EPOCH_DAYS - 1
MAX_TIME = 86_400_000_000  # 24:00:00 is a valid time
_NUMERIC = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?|[+-]?(NaN|Infinity|inf)", re.I)


class DbFailure(Exception):
    """A call that answers the guest with db-error `kind` (payload: message, or for
    constraint-violation the (name, message) pair)."""

    def __init__(self, kind: str, payload: Any) -> None:
        super().__init__(f"{kind}: {payload}")
        self.kind = kind
        self.payload = payload


class BadParameter(ValueError):
    """A parameter the host refuses to bind (the guest gets `invalid-parameter`)."""


# Marker types: what a time case becomes, so its codec can refuse anything else.
class Timestamp(NamedTuple):
    micros: int  # since the Unix epoch, naive


class Timestamptz(NamedTuple):
    micros: int  # since the Unix epoch, UTC


class Date(NamedTuple):
    days: int


class Time(NamedTuple):
    micros: int


class Interval(NamedTuple):
    months: int
    days: int
    micros: int


def _expect(kind: type[Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise TypeError(f"expected a {kind.__name__.lower()} value, got {_case_of(value)}")
        return value

    return check


def _case_of(value: Any) -> str:
    return type(value).__name__.lower() if value is not None else "null"


def _encode_ts(kind: type[Any]) -> Callable[[Any], tuple[int]]:
    check = _expect(kind)
    return lambda v: (check(v).micros - PG_EPOCH_MICROS,)


# asyncpg codecs (Connection.set_type_codec, format="tuple"), set on every connection:
# name -> (encoder, decoder). Results decode straight to the WIT integers.
CODECS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "timestamp": (_encode_ts(Timestamp), lambda t: t[0] + PG_EPOCH_MICROS),
    "timestamptz": (_encode_ts(Timestamptz), lambda t: t[0] + PG_EPOCH_MICROS),
    "date": (lambda v: (_expect(Date)(v).days - PG_EPOCH_DAYS,), lambda t: t[0] + PG_EPOCH_DAYS),
    "time": (lambda v: (_expect(Time)(v).micros,), lambda t: t[0]),
    "interval": (lambda v: tuple(_expect(Interval)(v)), lambda t: (t[0], t[1], t[2])),
}
# numeric travels as text both ways (format="text"): exact, no Decimal in between
NUMERIC_CODEC = (str, str)


def _check_range(value: int, low: int, high: int, what: str) -> int:
    if not low <= value <= high:
        raise ValueError(f"{what} {value} is outside PostgreSQL's range ({low}..{high})")
    return value


def _json(text: str) -> str:
    try:
        json.loads(text)
    except ValueError as exc:
        raise ValueError(f"malformed JSON ({exc})") from None
    return text


def _numeric(text: str) -> str:
    if not _NUMERIC.fullmatch(text.strip()):
        raise ValueError(f"{text[:40]!r} is not a decimal number")
    return text.strip()


def _uuid(pair: Any) -> uuid.UUID:
    high, low = pair
    return uuid.UUID(int=(high << 64) | low)


def _timestamp(kind: type[Any]) -> Callable[[int], Any]:
    return lambda v: kind(_check_range(v, MIN_TIMESTAMP, MAX_TIMESTAMP, "timestamp"))


def _scalar(case: str) -> Callable[[Any], Any]:
    return _SCALARS[case]


_SCALARS: dict[str, Callable[[Any], Any]] = {
    "boolean": bool,
    "int2": int,
    "int4": int,
    "int8": int,
    "float4": float,
    "float8": float,
    "text": str,
    "bytea": bytes,
    "timestamptz": _timestamp(Timestamptz),
    "timestamp": _timestamp(Timestamp),
    "date": lambda v: Date(_check_range(v, MIN_DATE, MAX_DATE, "date")),
    "time": lambda v: Time(_check_range(v, 0, MAX_TIME, "time")),
    "interval": lambda v: Interval(*v),
    "numeric": _numeric,
    "uuid": _uuid,
    "jsonb": _json,
    "oid": int,
}
# array case -> its element's scalar case
ARRAY_ELEMENTS = {
    "bool-array": "boolean",
    "int2-array": "int2",
    "int4-array": "int4",
    "int8-array": "int8",
    "float4-array": "float4",
    "float8-array": "float8",
    "text-array": "text",
    "timestamptz-array": "timestamptz",
    "timestamp-array": "timestamp",
    "uuid-array": "uuid",
    "jsonb-array": "jsonb",
}


def to_param(index: int, case: str, payload: Any) -> Any:
    """The asyncpg argument for parameter $index given as pg-value `case(payload)`."""
    try:
        if case == "null":
            return None
        element = ARRAY_ELEMENTS.get(case)
        if element is None:
            return _scalar(case)(payload)
        convert = _scalar(element)
        out = []
        for i, item in enumerate(payload):
            try:
                out.append(None if item is None else convert(item))
            except (ValueError, TypeError) as exc:
                raise ValueError(f"element {i + 1}: {exc}") from None
        return out
    except KeyError:
        raise BadParameter(f"${index}: unknown pg-value case {case!r}") from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadParameter(f"${index} ({case}): {exc}") from None


# Result columns: PostgreSQL type OID -> the pg-value case it is returned as.
COLUMN_CASES: dict[int, str] = {
    16: "boolean",
    17: "bytea",
    19: "text",  # name
    20: "int8",
    21: "int2",
    23: "int4",
    25: "text",
    26: "oid",
    114: "jsonb",  # json
    700: "float4",
    701: "float8",
    1042: "text",  # bpchar
    1043: "text",  # varchar
    1082: "date",
    1083: "time",
    1114: "timestamp",
    1184: "timestamptz",
    1186: "interval",
    1700: "numeric",
    2950: "uuid",
    3802: "jsonb",
    1000: "bool-array",
    1005: "int2-array",
    1007: "int4-array",
    1016: "int8-array",
    1021: "float4-array",
    1022: "float8-array",
    1009: "text-array",
    1014: "text-array",  # bpchar[]
    1015: "text-array",  # varchar[]
    1115: "timestamp-array",
    1185: "timestamptz-array",
    2951: "uuid-array",
    199: "jsonb-array",  # json[]
    3807: "jsonb-array",
}


def uuid_pair(value: Any) -> tuple[int, int]:
    """asyncpg's UUID (or uuid.UUID) as the WIT (high, low) pair."""
    number = value.int
    return number >> 64, number & 0xFFFF_FFFF_FFFF_FFFF


def from_column(case: str, value: Any) -> Any:
    """The payload of pg-value `case` for a decoded column value (not None)."""
    if case == "uuid":
        return uuid_pair(value)
    if case == "uuid-array":
        return [None if v is None else uuid_pair(v) for v in value]
    if case == "bytea":
        return bytes(value)
    if case == "interval":
        return tuple(value)
    if case in ARRAY_ELEMENTS and any(isinstance(v, list) for v in value):
        raise ValueError("multi-dimensional arrays are not supported")
    return value


def value_size(value: Any) -> int:
    """Roughly what a column value costs to hold (for the result byte limit)."""
    if isinstance(value, (str, bytes, bytearray)):
        return len(value) + 16
    if isinstance(value, list):
        return sum(value_size(v) for v in value) + 16
    return 16

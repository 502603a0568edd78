"""The db capability's value conversions and error kinds, without wasm or PostgreSQL."""

from __future__ import annotations

import ctypes
import uuid
from typing import Any

import asyncpg
import pytest
from wasmtime import _ffi as ffi

from runtime.engine import cap_db, db_values, db_wit
from runtime.engine.db_values import BadParameter, to_param


@pytest.mark.parametrize(
    ("case", "payload", "expected"),
    [
        ("null", None, None),
        ("int4", 7, 7),
        ("text", "x", "x"),
        ("numeric", " -1.50e3 ", "-1.50e3"),
        ("numeric", "NaN", "NaN"),
        ("jsonb", '{"a": [1]}', '{"a": [1]}'),
        ("uuid", (1, 2), uuid.UUID(int=(1 << 64) | 2)),
        ("timestamp", 0, db_values.Timestamp(0)),
        ("date", -1, db_values.Date(-1)),
        ("interval", (1, 2, 3), db_values.Interval(1, 2, 3)),
        ("int4-array", [1, None], [1, None]),
        ("jsonb-array", ["1", None], ["1", None]),
    ],
)
def test_parameters_convert(case: str, payload: Any, expected: Any) -> None:
    assert to_param(1, case, payload) == expected


@pytest.mark.parametrize(
    ("case", "payload", "message"),
    [
        ("jsonb", "{oops", "$3 (jsonb): malformed JSON"),
        ("numeric", "1.2.3", "$3 (numeric): '1.2.3' is not a decimal number"),
        ("timestamptz", db_values.MIN_TIMESTAMP - 1, "$3 (timestamptz): timestamp"),
        ("date", db_values.MAX_DATE + 1, "outside PostgreSQL's range"),
        ("time", -1, "$3 (time): time -1"),
        ("jsonb-array", ["1", "[", None], "$3 (jsonb-array): element 2: malformed JSON"),
        ("timestamp-array", [db_values.MIN_TIMESTAMP - 1], "element 1: timestamp"),
        ("no-such-case", 1, "$3: unknown pg-value case"),
    ],
)
def test_bad_parameters_name_the_parameter(case: str, payload: Any, message: str) -> None:
    with pytest.raises(BadParameter) as caught:
        to_param(3, case, payload)
    assert message in str(caught.value)


def test_time_codecs_refuse_other_cases_and_keep_unix_units() -> None:
    encode, decode = db_values.CODECS["timestamptz"]
    assert encode(db_values.Timestamptz(db_values.PG_EPOCH_MICROS)) == (0,)
    assert decode((0,)) == db_values.PG_EPOCH_MICROS
    with pytest.raises(TypeError, match="expected a timestamptz value, got int"):
        encode(5)
    with pytest.raises(TypeError, match="expected a date value, got timestamp"):
        db_values.CODECS["date"][0](db_values.Timestamp(1))
    assert db_values.CODECS["date"][1]((0,)) == db_values.PG_EPOCH_DAYS


def test_result_columns() -> None:
    assert db_values.COLUMN_CASES[1043] == "text"  # varchar
    value = uuid.UUID(int=(5 << 64) | 6)
    assert db_values.from_column("uuid", value) == (5, 6)
    assert db_values.from_column("uuid-array", [value, None]) == [(5, 6), None]
    assert db_values.from_column("bytea", bytearray(b"ab")) == b"ab"
    with pytest.raises(ValueError, match="multi-dimensional"):
        db_values.from_column("int4-array", [[1], [2]])


def _pg_error(cls: type[Any], message: str, **fields: str) -> Any:
    exc = cls(message)
    for key, value in fields.items():
        setattr(exc, key, value)
    return exc


def test_error_kinds() -> None:
    classify = cap_db.classify
    syntax = _pg_error(asyncpg.PostgresSyntaxError, 'syntax error at "SELEC"', sqlstate="42601")
    assert classify(syntax).kind == "syntax"
    assert str(classify(syntax).payload).startswith("42601: ")
    unique = _pg_error(
        asyncpg.UniqueViolationError, "duplicate", sqlstate="23505", constraint_name="k"
    )
    assert classify(unique).kind == "constraint-violation"
    assert classify(unique).payload[0] == "k"
    assert classify(_pg_error(asyncpg.QueryCanceledError, "x", sqlstate="57014")).kind == "timeout"
    denied = _pg_error(asyncpg.InsufficientPrivilegeError, "denied", sqlstate="42501")
    assert classify(denied).kind == "query"
    assert classify(ConnectionRefusedError(111, "refused")).kind == "connection"
    assert classify(BadParameter("$1: no")).kind == "invalid-parameter"


def test_bytes_and_values_cross_as_c_values() -> None:
    """What the binding writes into a C value reads back the same (bytea in one copy)."""
    data = bytes(range(256)) * 3
    raw = ffi.wasmtime_component_val_t()
    db_wit._set_bytes(raw, data)
    try:
        assert db_wit._read(raw) == data
    finally:
        ffi.wasmtime_component_val_delete(ctypes.byref(raw))
    for case, value in [("int2", -5), ("uuid", (1, 2)), ("interval", (1, -2, 3))]:
        val = ffi.wasmtime_component_val_t()
        db_wit.set_pg_value(val, case, value)
        try:
            variant = val.of.variant
            assert ffi.to_str(variant.discriminant) == case
            assert db_wit._read(variant.val.contents) == value
        finally:
            ffi.wasmtime_component_val_delete(ctypes.byref(val))


def test_sdk_outside_a_db_component_names_the_guest_toml_line() -> None:
    from wr_sdk import GuestOnly, db

    with pytest.raises(GuestOnly, match=r'capabilities = \["db"\] in guest.toml'):
        db.query("SELECT 1")

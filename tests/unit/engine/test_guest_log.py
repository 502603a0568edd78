"""A guest's log: records carry module, version and trace id; stderr is logged line by line;
a request's records stop at the budget, with one notice of what was left out."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runtime.engine.guest_log import LOG_BUDGET_BYTES, GuestLog
from runtime.engine.spec import ModuleSpec

SPEC = ModuleSpec("echo", "example", "1.2.3", "/x.bin", 30.0, 1 << 28, 1 << 26)


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "wr-engine.guest"]


def test_stderr_lines_are_logged_with_the_guest_identity(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stderr = tmp_path / "stderr"
    stderr.write_bytes("first\nsecond \xe2\x9c\x93\n".encode("latin-1"))
    log = GuestLog(SPEC, lambda: "t" * 32)
    log.write(logging.WARNING, "from log.write")
    log.flush_stderr(stderr)
    log.flush_stderr(tmp_path / "missing")
    log.close()
    got = [(r.getMessage(), r.stream, r.levelno) for r in _records(caplog)]  # type: ignore[attr-defined]
    assert got == [
        ("from log.write", "log", logging.WARNING),
        ("first", "stderr", logging.INFO),
        ("second \u2713", "stderr", logging.INFO),
    ]
    record = _records(caplog)[0]
    assert (record.wr_module, record.version, record.trace_id) == (  # type: ignore[attr-defined]
        "example.echo",
        "1.2.3",
        "t" * 32,
    )


def test_the_budget_ends_logging_with_one_notice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    log = GuestLog(SPEC, lambda: "t" * 32)
    for _ in range(1000):
        log.write(logging.INFO, "x" * 100)
    stderr = tmp_path / "stderr"
    stderr.write_bytes(b"y" * 10_000)
    log.flush_stderr(stderr)
    log.close()
    records = _records(caplog)
    logged = sum(len(r.getMessage()) for r in records[:-1])
    assert LOG_BUDGET_BYTES / 2 < logged <= LOG_BUDGET_BYTES
    assert records[-1].getMessage().startswith("guest log budget of 65536 bytes per request")
    assert records[-1].levelno == logging.WARNING

"""Every byte a guest or its client controls counts against the module's max_body_mb: request
bodies (413, before they are read), response bodies, /wr-io files and stderr (500, the guest
stopped within a tick), and the engine serves on afterwards."""

from __future__ import annotations

import json
import socket
from typing import BinaryIO
from urllib.parse import urlsplit

import pytest

from tests.integration.engine.conftest import Engine, PeakUsage, module_toml

pytestmark = pytest.mark.slow

MIB = 1 << 20
# How far past its quota a flooding guest may get before the next tick stops it: what it
# writes in about 10 ms, far below the 1000 MiB it asks for.
OVERSHOOT = 64 * MIB
TESTKIT = "POST /echo HTTP/1.1\r\nhost: t\r\nx-wr-module: testkit\r\nx-wr-namespace: example\r\n"


@pytest.fixture
def engine(components, start_engine) -> Engine:  # type: ignore[no-untyped-def]
    return start_engine(
        module_toml("testkit", components["testkit"], max_body_mb=1)
        + module_toml("hostile", components["hostile"], max_body_mb=1)
    )


def _connect(engine: Engine) -> socket.socket:
    parts = urlsplit(engine.base)
    return socket.create_connection((parts.hostname, parts.port), timeout=30)


def _response(f: BinaryIO) -> tuple[int, bytes]:
    status = int(f.readline().split()[1])
    length = 0
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, f.read(length)


def test_a_body_at_the_limit_passes(engine: Engine) -> None:
    body = bytes(range(256)) * (MIB // 256)
    status, _, reply = engine.call("example.testkit", "/echo", body)
    assert (status, reply == body) == (200, True)


def test_a_declared_body_over_the_limit_is_413_before_it_is_sent(engine: Engine) -> None:
    with _connect(engine) as sock, sock.makefile("rb") as f:
        sock.sendall(f"{TESTKIT}content-length: {MIB + 1}\r\n\r\n".encode())  # no body sent
        status, reply = _response(f)
    assert status == 413
    assert b"request body of 1048577 bytes is over the limit of module example.testkit" in reply


def test_expect_continue_over_the_limit_gets_413_not_100(engine: Engine) -> None:
    with _connect(engine) as sock, sock.makefile("rb") as f:
        sock.sendall(f"{TESTKIT}content-length: {2 * MIB}\r\nexpect: 100-continue\r\n\r\n".encode())
        status, _ = _response(f)
    assert status == 413


def test_a_chunked_body_over_the_limit_is_413_while_it_streams(engine: Engine) -> None:
    chunk = b"%x\r\n%s\r\n" % (256 * 1024, b"c" * 256 * 1024)
    with _connect(engine) as sock, sock.makefile("rb") as f:
        sock.sendall(f"{TESTKIT}transfer-encoding: chunked\r\n\r\n".encode())
        sock.sendall(chunk * 6)  # 1.5 MiB: the engine keeps reading (and dropping) to the end
        status, reply = _response(f)
    assert status == 413 and b"request body over the limit of 1048576 bytes" in reply


def test_a_response_body_over_the_limit_is_500(engine: Engine) -> None:
    status, _, reply = engine.call("example.hostile", "/stdout", json.dumps({"mib": 2}).encode())
    assert status == 500
    assert reply == b"module example.hostile: response body over its limit of 1 MiB (max_body_mb)"


@pytest.mark.parametrize(
    ("route", "spec", "reason"),
    [
        ("/stdout", {"mib": 1000}, b"response body over its limit of 1 MiB"),
        ("/io", {"mib": 1000}, b"wrote over 2 MiB to /wr-io and stderr"),
        ("/io", {"mib": 1000, "files": 50}, b"wrote over 2 MiB to /wr-io and stderr"),
        ("/io", {"mib": 1000, "files": 50, "nested": True}, b"wrote over 2 MiB to /wr-io"),
        ("/io", {"empty": 100_000}, b"made over 1000 files in /wr-io"),
        ("/stderr", {"lines": ["e" * 4000], "repeat": 100_000}, b"wrote over 2 MiB to /wr-io"),
    ],
)
def test_a_flooding_guest_is_stopped_near_its_quota(
    engine: Engine, route: str, spec: dict[str, object], reason: bytes
) -> None:
    with PeakUsage(engine.scratch_dirs()) as usage:
        status, _, reply = engine.call("example.hostile", route, json.dumps(spec).encode())
    assert status == 500
    assert reason in reply
    assert usage.peak < 2 * MIB + OVERSHOOT, f"the scratch dir held {usage.peak >> 20} MiB"
    assert sum(len(list(d.rglob("*"))) for d in engine.scratch_dirs()) < 50  # cleaned up
    status, _, reply = engine.call("example.testkit", "/echo", b"still here")
    assert (status, reply) == (200, b"still here")

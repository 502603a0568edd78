"""The engine's HTTP protocol on a loopback socket, with a stand-in for the front (no wasm):
idle keep-alive connections are closed, a slow answer is not, large bodies arrive as files,
bodies over the limit and overlong request targets are refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest

from runtime.engine.http_front import EngineConnection, Listener
from runtime.engine.ipc import INLINE_MAX
from runtime.engine.pool import Reply
from runtime.engine.server import Front, IncomingRequest

pytestmark = pytest.mark.asyncio(loop_scope="session")  # the loop the fixtures run in


class StubFront:
    """Answers with what it received: the body (read from its file when spilled) and where."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.spilled: list[Path] = []
        self.body_limit = 1 << 30
        self.answered = 0

    def admit(self, request: IncomingRequest) -> int:
        return self.body_limit

    async def answer(self, request: IncomingRequest) -> Reply:
        self.answered += 1
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow guest
        body = request.body
        if request.body_file is not None:
            self.spilled.append(request.body_file)
            body = request.body_file.read_bytes()
        return Reply(200, [("x-path", request.path_qs)], body)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[StubFront, Listener, int]]:
    front = StubFront()
    listener = Listener(cast(Front, front), tmp_path / "spill", idle_secs=0.3)
    server = await asyncio.get_running_loop().create_server(
        lambda: EngineConnection(listener), "127.0.0.1", 0
    )
    yield front, listener, server.sockets[0].getsockname()[1]
    server.close()
    listener.close_all()


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: bytes
) -> tuple[bytes, bytes]:
    writer.write(b"POST /p HTTP/1.1\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.startswith(b"content-length")
    )
    return head, await asyncio.wait_for(reader.readexactly(length), 10)


async def test_idle_keep_alive_connection_is_closed(served) -> None:  # type: ignore[no-untyped-def]
    _, listener, port = served
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head, body = await _exchange(reader, writer, b"hi")
    assert head.startswith(b"HTTP/1.1 200") and body == b"hi"
    started = asyncio.get_running_loop().time()
    assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the engine
    assert asyncio.get_running_loop().time() - started >= 0.2
    assert not listener.connections
    writer.close()


async def test_a_slow_answer_is_not_cut_by_the_idle_timeout(served) -> None:  # type: ignore[no-untyped-def]
    front, _, port = served
    front.delay = 0.8  # longer than the idle timeout
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    _, body = await _exchange(reader, writer, b"slow")
    assert body == b"slow"
    writer.close()


async def test_large_body_arrives_as_a_file_and_is_removed(served) -> None:  # type: ignore[no-untyped-def]
    front, _, port = served
    payload = bytes(range(256)) * (INLINE_MAX // 256 + 100)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    _, body = await _exchange(reader, writer, payload)
    assert body == payload
    assert len(front.spilled) == 1
    assert not front.spilled[0].exists()  # the front removes what nobody moved away
    _, small = await _exchange(reader, writer, b"small")
    assert small == b"small" and len(front.spilled) == 1  # small bodies stay in memory
    writer.close()


async def _refusal(port: int, head: bytes, body: bytes = b"") -> tuple[bytes, bytes]:
    """Send head (and body), read the answer to its end: the engine closes after a refusal."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + body)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return status_line, rest.partition(b"\r\n\r\n")[2]


async def test_a_body_over_the_limit_is_refused_unread(served) -> None:  # type: ignore[no-untyped-def]
    front, listener, port = served
    front.body_limit = 100
    status, body = await _refusal(port, b"POST /p HTTP/1.1\r\ncontent-length: 101\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 413 ")
    assert body == b"request body of 101 bytes is over the limit of 100 bytes (max_body_mb)\n"
    chunked = b"POST /p HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n"
    chunk = b"40\r\n" + b"c" * 64 + b"\r\n"
    status, body = await _refusal(port, chunked, chunk * 2)
    assert status.startswith(b"HTTP/1.1 413") and b"over the limit of 100 bytes" in body
    assert front.answered == 0
    assert not list(listener.spill_dir.iterdir())


async def test_an_overlong_request_target_is_414(served) -> None:  # type: ignore[no-untyped-def]
    _, _, port = served
    target = b"/" + b"a" * (70 * 1024)
    status, _ = await _refusal(port, b"GET " + target + b" HTTP/1.1\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 414")

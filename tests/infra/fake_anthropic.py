"""A local stand-in for the Anthropic Messages API, on loopback, for the `anthropic` SDK.

`POST /v1/messages` answers with JSON, or with server-sent events when the body says
`"stream": true` (message_start, content_block_start/delta/stop for text and for tool_use with
input_json_delta, ping, message_delta with the stop reason and usage, message_stop; or an
`error` event). The key, in `x-api-key` or `authorization: Bearer` (the SDK 2.x's way), must
be `api_key` (else 401), the body must look like a
Messages request (else 400). A test scripts the answers, in order, with `Reply`s (text, tool
calls, stop reason, usage, delays between events, a stream cut mid-way or held open, an error
status with retry-after) and reads what arrived in `requests` (headers, the parsed body, what a
stream sent and when, whether the client went away before the end).

    fake_anthropic.script(Reply(text=["Hel", "lo"], delay=0.2))
    ... the module calls the API at fake_anthropic.base_url with key fake_anthropic.api_key ...
    assert fake_anthropic.requests[0].body["system"] == "Be brief."
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

HOST = "127.0.0.1"
API_KEY = "sk-ant-test-0123456789"
HOLD_LIMIT_SECS = 30.0  # a held stream ends by itself after this, client gone or not
WAIT_CLOSED_SECS = 10.0


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    input: dict[str, Any]


@dataclass
class Reply:
    """One scripted answer. `text` as a list is streamed one delta per item."""

    text: str | list[str] = "Hello from the fake model."
    tool_calls: list[ToolCall] = field(default_factory=list)
    stop_reason: str | None = None  # default: "tool_use" with tool calls, else "end_turn"
    input_tokens: int = 12
    output_tokens: int = 7
    delay: float = 0.0  # seconds before each streamed text delta, or before a JSON answer
    cut_after: int | None = None  # stream: drop the connection after this many text deltas
    error_event: tuple[str, str] | None = None  # stream: (type, message) instead of the end
    hold: bool = False  # stream: after the deltas, ping until the client goes
    status: int = 200  # an error status answers with an error body of `error_type`
    error_type: str = "api_error"
    error_message: str = "scripted failure"
    retry_after: int | None = None  # the retry-after header of an error answer
    wait_closed: int | None = None  # first wait until request #n's client went away

    def chunks(self) -> list[str]:
        return list(self.text) if isinstance(self.text, list) else [self.text] if self.text else []

    def stop(self) -> str:
        return self.stop_reason or ("tool_use" if self.tool_calls else "end_turn")

    def content(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if self.chunks():
            blocks.append({"type": "text", "text": "".join(self.chunks())})
        for call in self.tool_calls:
            blocks.append(
                {"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}
            )
        return blocks


@dataclass
class Received:
    """One request as the server got it."""

    index: int
    headers: dict[str, str]
    body: Any
    stream: bool = False
    sent: list[tuple[str, float]] = field(default_factory=list)  # (text delta, time.time())
    client_gone: float | None = None  # time.time() when a write found the client gone
    completed: bool = False  # the whole answer was written
    answered: float | None = None  # time.time() when the answer started
    gone: asyncio.Event = field(default_factory=asyncio.Event, repr=False)


class ClientGone(Exception):
    pass


def _error(status: int, kind: str, message: str, retry_after: int | None = None) -> web.Response:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return web.json_response(body, status=status, headers=headers)


def _bearer(request: web.Request) -> str | None:
    """The key of `authorization: Bearer <key>` (how anthropic SDK 2.x sends its api_key)."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key if scheme.lower() == "bearer" else None


def body_problem(body: Any) -> str | None:
    """Why a body is not a Messages API request (None: it is, as far as this fake checks)."""
    if not isinstance(body, dict):
        return "body: expected a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    tokens = body.get("max_tokens")
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        return "max_tokens: expected an integer >= 1"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: expected a non-empty list"
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: expected 'user' or 'assistant'"
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or not content:
            return f"messages.{i}.content: expected a string or a non-empty list of blocks"
        for j, block in enumerate(content):
            kind = block.get("type") if isinstance(block, dict) else None
            if kind not in ("text", "tool_use", "tool_result"):
                return f"messages.{i}.content.{j}.type: unknown block type {kind!r}"
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, dict) or not tool.get("name") or "input_schema" not in tool:
            return f"tools.{i}: expected name and input_schema"
    temperature = body.get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        return "temperature: expected 0.0 to 1.0"
    return None


class FakeAnthropic:
    """The server: start() in a thread of its own, script() answers, read requests."""

    def __init__(self, api_key: str = API_KEY) -> None:
        self.api_key = api_key
        self.base_url = ""
        self.requests: list[Received] = []
        self._script: list[Reply] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    # -- test side ----------------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        """Queue answers for the next requests (one each); unscripted requests get Reply()."""
        with self._lock:
            self._script.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://{HOST}:{port}"

    # -- server side --------------------------------------------------------------------------

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            got = Received(len(self.requests), dict(request.headers), body)
            self.requests.append(got)
            reply = self._script.pop(0) if self._script else Reply()
        if self.api_key not in (request.headers.get("x-api-key"), _bearer(request)):
            return _error(401, "authentication_error", "invalid x-api-key")
        problem = body_problem(body)
        if problem:
            return _error(400, "invalid_request_error", problem)
        if reply.wait_closed is not None:
            earlier = self.requests[reply.wait_closed]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(earlier.gone.wait(), WAIT_CLOSED_SECS)
        got.answered = time.time()
        if reply.status != 200:
            return _error(reply.status, reply.error_type, reply.error_message, reply.retry_after)
        got.stream = bool(body.get("stream"))
        if not got.stream:
            await asyncio.sleep(reply.delay)
            got.completed = True
            return web.json_response(self._message(body, reply, final=True))
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        try:
            await self._stream(request, response, body, reply, got)
        except (ClientGone, ConnectionError):
            got.client_gone = time.time()
            got.gone.set()
            return response
        return response

    def _message(self, body: dict[str, Any], reply: Reply, final: bool) -> dict[str, Any]:
        return {
            "id": "msg_fake_0001",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": reply.content() if final else [],
            "stop_reason": reply.stop() if final else None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": reply.input_tokens,
                "output_tokens": reply.output_tokens if final else 1,
            },
        }

    async def _stream(
        self,
        request: web.Request,
        response: web.StreamResponse,
        body: dict[str, Any],
        reply: Reply,
        got: Received,
    ) -> None:
        async def send(event: str, data: dict[str, Any]) -> None:
            transport = request.transport
            if transport is None or transport.is_closing():
                raise ClientGone
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        await send(
            "message_start", {"type": "message_start", "message": self._message(body, reply, False)}
        )
        index = 0
        chunks = reply.chunks()
        if chunks:
            text_block = {"type": "text", "text": ""}
            await send(
                "content_block_start",
                {"type": "content_block_start", "index": 0, "content_block": text_block},
            )
            await send("ping", {"type": "ping"})
            for n, chunk in enumerate(chunks):
                if reply.cut_after is not None and n == reply.cut_after:
                    assert request.transport is not None
                    request.transport.close()  # mid-body: the client sees a broken chunked stream
                    return
                if reply.delay:
                    await asyncio.sleep(reply.delay)
                delta = {"type": "text_delta", "text": chunk}
                await send(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                )
                got.sent.append((chunk, time.time()))
            await send("content_block_stop", {"type": "content_block_stop", "index": 0})
            index = 1
        for call in reply.tool_calls:
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": call.id,
                "name": call.name,
                "input": {},
            }
            await send(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
            encoded = json.dumps(call.input)
            for part in (encoded[: len(encoded) // 2], encoded[len(encoded) // 2 :]):
                delta = {"type": "input_json_delta", "partial_json": part}
                await send(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        if reply.hold:
            give_up = time.monotonic() + HOLD_LIMIT_SECS
            while time.monotonic() < give_up:
                await send("ping", {"type": "ping"})
                await asyncio.sleep(0.05)
            return
        if reply.error_event is not None:
            kind, message = reply.error_event
            await send("error", {"type": "error", "error": {"type": kind, "message": message}})
            return
        await send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": reply.stop(), "stop_sequence": None},
                "usage": {"output_tokens": reply.output_tokens},
            },
        )
        await send("message_stop", {"type": "message_stop"})
        await response.write_eof()
        got.completed = True


@pytest.fixture
def fake_anthropic() -> Iterator[FakeAnthropic]:
    """A fresh fake Messages API on loopback: `.base_url`, `.api_key`, `.script(...)`,
    `.requests`."""
    server = FakeAnthropic()
    server.start()
    yield server
    server.stop()

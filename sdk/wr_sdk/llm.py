"""Completions from an LLM (the `llm` capability: the Anthropic Messages API, through the host).

Grant it in cluster.toml (`capabilities = ["llm"]` on the module) and build with it
(`capabilities = ["llm"]` in guest.toml). The host holds the API key; the module never sees it.

    from wr_sdk import llm

    reply = llm.complete(
        model="claude-sonnet-4-5",
        system="You answer in one sentence.",
        messages=[llm.user("What is WebAssembly?")],
        max_tokens=200,
    )
    print(reply.text, reply.usage.output_tokens)

Tools: pass `tools=[llm.Tool(...)]`; when the model calls them (`reply.tool_calls`), send
its content back as an assistant message and the results in a user message:

    tools = [llm.Tool("stock", "Units in stock of a product", {"type": "object",
             "properties": {"sku": {"type": "string"}}, "required": ["sku"]})]
    messages = [llm.user("How many red mugs are left?")]
    reply = llm.complete(model=MODEL, messages=messages, tools=tools, max_tokens=500)
    while reply.tool_calls:
        messages.append(reply.message())
        messages.append(llm.tool_results(
            *(llm.ToolResult(call.id, str(lookup(call.input["sku"]))) for call in reply.tool_calls)
        ))
        reply = llm.complete(model=MODEL, messages=messages, tools=tools, max_tokens=500)

Streaming (text only; tools are not streamed):

    with llm.stream(model=MODEL, messages=[llm.user("Tell a story")], max_tokens=400) as s:
        for delta in s:
            write(delta)
    print(s.stop_reason, s.usage)

Errors are exceptions carrying the WIT error kind (`LlmError.kind`): InvalidRequest,
AuthError, RateLimited (`.retry_after`), ApiError, BudgetExceeded (`.retry_after`: the
module's tokens per minute are spent), TooManyStreams (a request may hold 32 open),
LlmTimeout.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from wr_sdk._host import GuestOnly

try:
    from componentize_py_types import Err
    from wit_world.imports import inference as _wit
except ImportError:  # a world without the llm capability, or not in a guest at all
    _wit = None

    class Err(Exception):  # type: ignore[no-redef]  # never raised: calls stop at GuestOnly
        value: Any


# -- errors -----------------------------------------------------------------------------------


class LlmError(Exception):
    """An LLM call failed; `kind` is the WIT error case (e.g. "rate-limited")."""

    kind = "api"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(LlmError):
    """Bad parameters (max_tokens over the host's limit, bad tool JSON, context too long)."""

    kind = "invalid-request"


class AuthError(LlmError):
    """The provider refused the host's API key, or the host has none yet."""

    kind = "auth"


class RateLimited(LlmError):
    """The provider rate-limited the call; `retry_after` is seconds to wait, when known."""

    kind = "rate-limited"

    def __init__(self, retry_after: int | None) -> None:
        super().__init__(f"rate limited by the provider (retry after {retry_after} s)")
        self.retry_after = retry_after


class ApiError(LlmError):
    """The provider failed, the connection broke or a stream was cut short."""

    kind = "api"


class BudgetExceeded(LlmError):
    """The module used its tokens for the minute; `retry_after` seconds until there is room."""

    kind = "budget-exceeded"

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"the module's LLM token budget per minute is spent (retry in {retry_after} s)"
        )
        self.retry_after = retry_after


class TooManyStreams(LlmError):
    """The request holds the most streams the host allows (close some first)."""

    kind = "too-many-streams"

    def __init__(self, limit: int) -> None:
        super().__init__(f"over {limit} open LLM streams in one request")
        self.limit = limit


class LlmTimeout(LlmError):
    """The provider did not answer within the host's timeout."""

    kind = "timeout"


def _error(err: Any) -> LlmError:
    assert _wit is not None
    if isinstance(err, _wit.LlmError_InvalidRequest):
        return InvalidRequest(err.value)
    if isinstance(err, _wit.LlmError_Auth):
        return AuthError(err.value)
    if isinstance(err, _wit.LlmError_RateLimited):
        return RateLimited(err.value)
    if isinstance(err, _wit.LlmError_BudgetExceeded):
        return BudgetExceeded(err.value)
    if isinstance(err, _wit.LlmError_TooManyStreams):
        return TooManyStreams(err.value)
    if isinstance(err, _wit.LlmError_Timeout):
        return LlmTimeout(err.value)
    return ApiError(getattr(err, "value", str(err)))


def _need_llm() -> Any:
    if _wit is None:
        raise GuestOnly(
            "wr_sdk.llm needs a component built with the llm capability "
            '(capabilities = ["llm"] in guest.toml)'
        )
    return _wit


# -- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    """A tool the model wants called: `input` is the decoded JSON object."""

    id: str
    name: str
    input: dict[str, Any]


@dataclass(frozen=True)
class ToolResult:
    """What a tool call gave (`content` as text); is_error=True says it failed."""

    tool_use_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class Tool:
    """A tool the model may call; input_schema is a JSON Schema (a dict)."""

    name: str
    description: str
    input_schema: dict[str, Any]


Block = str | ToolCall | ToolResult


@dataclass(frozen=True)
class Message:
    """One turn: role "user" or "assistant", content a str or a list of blocks."""

    role: str
    content: str | Sequence[Block]


def user(*content: Block) -> Message:
    """A user message: `llm.user("Hi")`."""
    return Message("user", list(content))


def assistant(*content: Block) -> Message:
    """An assistant message (a turn of the model's, sent back as context)."""
    return Message("assistant", list(content))


def tool_results(*results: ToolResult) -> Message:
    """The user message answering the model's tool calls."""
    return Message("user", list(results))


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Completion:
    """A completion: `text` (all text blocks), `tool_calls`, `stop_reason`, `usage`;
    `content` keeps the blocks in order (`message()` is them as an assistant message)."""

    content: list[Block]
    stop_reason: str
    usage: Usage

    @property
    def text(self) -> str:
        return "".join(b for b in self.content if isinstance(b, str))

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [b for b in self.content if isinstance(b, ToolCall)]

    def message(self) -> Message:
        return Message("assistant", list(self.content))


def _block(block: Block | Any) -> Any:
    assert _wit is not None
    if isinstance(block, str):
        return _wit.ContentBlock_Text(block)
    if isinstance(block, ToolCall):
        return _wit.ContentBlock_ToolUse(
            _wit.ToolUse(block.id, block.name, json.dumps(block.input))
        )
    if isinstance(block, ToolResult):
        return _wit.ContentBlock_ToolResult(
            _wit.ToolResult(block.tool_use_id, block.content, block.is_error)
        )
    raise TypeError(f"a message block is a str, ToolCall or ToolResult, not {type(block).__name__}")


def _message(message: Message | dict[str, Any]) -> Any:
    assert _wit is not None
    if isinstance(message, dict):  # {"role": ..., "content": ...} as in the Messages API
        message = Message(message["role"], message["content"])
    roles = {"user": _wit.MessageRole.USER, "assistant": _wit.MessageRole.ASSISTANT}
    if message.role not in roles:
        raise ValueError(f"a message's role is 'user' or 'assistant', not {message.role!r}")
    content = [message.content] if isinstance(message.content, str) else message.content
    return _wit.Message(roles[message.role], [_block(b) for b in content])


def _request(
    model: str,
    messages: Sequence[Message | dict[str, Any]],
    max_tokens: int,
    system: str | None,
    tools: Sequence[Tool],
    temperature: float | None,
) -> Any:
    wit = _need_llm()
    return wit.CompletionRequest(
        model=model,
        messages=[_message(m) for m in messages],
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        tools=[wit.ToolDef(t.name, t.description, json.dumps(t.input_schema)) for t in tools],
    )


def _completion(response: Any) -> Completion:
    assert _wit is not None
    content: list[Block] = []
    for block in response.content:
        if isinstance(block, _wit.ContentBlock_Text):
            content.append(block.value)
        elif isinstance(block, _wit.ContentBlock_ToolUse):
            use = block.value
            content.append(ToolCall(use.id, use.name, json.loads(use.input)))
    usage = Usage(response.usage.input_tokens, response.usage.output_tokens)
    return Completion(content, response.stop_reason, usage)


def complete(
    *,
    model: str,
    messages: Sequence[Message | dict[str, Any]],
    max_tokens: int,
    system: str | None = None,
    tools: Sequence[Tool] = (),
    temperature: float | None = None,
) -> Completion:
    """One completion. Messages are `llm.user(...)`/`llm.assistant(...)` (or Messages API
    style dicts with a str content). Raises an LlmError subclass."""
    request = _request(model, messages, max_tokens, system, tools, temperature)
    try:
        return _completion(_need_llm().complete(request))
    except Err as exc:
        raise _error(exc.value) from None


# -- streaming --------------------------------------------------------------------------------


@dataclass
class Stream:
    """Text deltas as the model writes them; `usage` and `stop_reason` once it is done.
    Iterate it (each item a str); close() (or the `with` block) ends it early, upstream too."""

    _handle: Any
    usage: Usage | None = None
    stop_reason: str | None = None
    _done: bool = field(default=False, repr=False)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        assert _wit is not None
        while not self._done:
            if self._handle is None:
                raise RuntimeError("this stream is closed")
            try:
                event = self._handle.next()
            except Err as exc:
                self.close()
                raise _error(exc.value) from None
            if event is None:
                self._done = True
            elif isinstance(event, _wit.StreamEvent_TextDelta):
                return str(event.value)
            elif isinstance(event, _wit.StreamEvent_Usage):
                self.usage = Usage(event.value.input_tokens, event.value.output_tokens)
            elif isinstance(event, _wit.StreamEvent_Stop):
                self.stop_reason = event.value
        self.close()
        raise StopIteration

    def text(self) -> str:
        """Read the rest of the stream and return it joined."""
        return "".join(self)

    def close(self) -> None:
        """Stop the stream (idempotent): the host closes it upstream."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.__exit__(None, None, None)

    def __enter__(self) -> Stream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def stream(
    *,
    model: str,
    messages: Sequence[Message | dict[str, Any]],
    max_tokens: int,
    system: str | None = None,
    temperature: float | None = None,
) -> Stream:
    """Start a streamed completion (no tools: use complete() for those); iterate the result
    for text deltas. Raises an LlmError subclass, here or while iterating."""
    request = _request(model, messages, max_tokens, system, (), temperature)
    try:
        return Stream(_need_llm().complete_stream(request))
    except Err as exc:
        raise _error(exc.value) from None

"""The LLM capability's side towards the provider: a guest's completion request (as read from
the WIT, see wit_tree.py) to Anthropic Messages API parameters, the `anthropic` SDK's answers
and errors back to WIT values, and a streamed answer pulled one WIT event at a time.

No wasmtime here: cap_llm.py reads and writes the guest's values, and runs these coroutines
on the worker's host loop (host_loop.py).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import anthropic

from runtime.engine.wit_tree import Option, Variant

# The SDK's default is to retry 429 and 5xx twice, sleeping in between: the guest asked for
# one call, its request has a deadline, and a 429's retry-after is the guest's to act on.
MAX_RETRIES = 0
INVALID_STATUSES = {400, 404, 413, 422}


class LlmError(Exception):
    """A WIT `llm-error`: its case and payload."""

    def __init__(self, case: str, payload: Any) -> None:
        super().__init__(f"{case}: {payload}")
        self.case = case
        self.payload = payload

    def wit(self) -> Variant:
        return Variant(self.case, self.payload)


def invalid(message: str) -> LlmError:
    return LlmError("invalid-request", message)


@dataclass(frozen=True)
class Limits:
    max_tokens: int  # [llm] max_tokens_limit


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise invalid(f"{what}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise invalid(f"{what}: expected a JSON object, got {type(value).__name__}")
    return value


def _block(block: tuple[str, Any], where: str) -> dict[str, Any]:
    case, payload = block
    if case == "text":
        return {"type": "text", "text": payload}
    if case == "tool-use":
        return {
            "type": "tool_use",
            "id": payload["id"],
            "name": payload["name"],
            "input": _json_object(payload["input"], f"{where} tool-use input"),
        }
    if case == "tool-result":
        return {
            "type": "tool_result",
            "tool_use_id": payload["tool-use-id"],
            "content": payload["content"],
            "is_error": payload["is-error"],
        }
    raise invalid(f"{where}: unknown content block {case!r}")


def request_params(req: dict[str, Any], limits: Limits, streaming: bool) -> dict[str, Any]:
    """The `messages.create` keyword arguments for a WIT completion-request, or LlmError
    (invalid-request) before any call."""
    max_tokens = req["max-tokens"]
    if max_tokens < 1:
        raise invalid("max-tokens must be at least 1")
    if max_tokens > limits.max_tokens:
        raise invalid(
            f"max-tokens {max_tokens} is over this host's limit of {limits.max_tokens} "
            "([llm] max_tokens_limit)"
        )
    if streaming and req["tools"]:
        raise invalid("tool use is not streamed: use complete (not complete-stream) with tools")
    if not req["messages"]:
        raise invalid("messages: expected at least one message")
    messages = []
    for i, message in enumerate(req["messages"]):
        content = [_block(b, f"messages[{i}]") for b in message["content"]]
        if not content:
            raise invalid(f"messages[{i}]: no content blocks")
        messages.append({"role": message["role"], "content": content})
    params: dict[str, Any] = {
        "model": req["model"],
        "max_tokens": max_tokens,
        "messages": messages,
    }
    if req["system"] is not None:
        params["system"] = req["system"]
    if req["temperature"] is not None:
        # an f32 (0.7 is 0.699999988...); sent as a body field: the SDK's create() (2.x) has
        # no `temperature` parameter, the Messages API still takes it
        params["extra_body"] = {"temperature": round(req["temperature"], 6)}
    if req["tools"]:
        params["tools"] = [
            {
                "name": tool["name"],
                "description": tool["description"],
                "input_schema": _json_object(tool["input-schema"], f"tool {tool['name']!r} schema"),
            }
            for tool in req["tools"]
        ]
    return params


def usage_tree(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {"input-tokens": _u32(input_tokens), "output-tokens": _u32(output_tokens)}


def _u32(n: int | None) -> int:
    return min(max(int(n or 0), 0), 2**32 - 1)


def response_tree(message: Any) -> dict[str, Any]:
    """A WIT completion-response for an SDK Message (blocks other than text and tool_use,
    e.g. thinking, have no WIT form and are left out)."""
    content: list[Variant] = []
    for block in message.content:
        if block.type == "text":
            content.append(Variant("text", block.text))
        elif block.type == "tool_use":
            use = {"id": block.id, "name": block.name, "input": json.dumps(block.input)}
            content.append(Variant("tool-use", use))
    return {
        "content": content,
        "usage": usage_tree(message.usage.input_tokens, message.usage.output_tokens),
        "stop-reason": message.stop_reason or "",
    }


def _error_text(exc: anthropic.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error")
        error: dict[str, Any] = inner if isinstance(inner, dict) else body
        kind, message = error.get("type"), error.get("message")
        if message:
            return f"{kind}: {message}" if kind else str(message)
    return f"status {exc.status_code}"


def _retry_after(exc: anthropic.APIStatusError) -> int | None:
    value = exc.response.headers.get("retry-after") if exc.response is not None else None
    try:
        return _u32(math.ceil(float(value))) if value is not None else None
    except ValueError:
        return None


def _is_timeout(exc: BaseException) -> bool:
    return any(c.__name__ in ("TimeoutException", "ReadTimeout") for c in type(exc).__mro__)


def map_error(exc: BaseException, secret: str | None) -> LlmError:
    """The WIT error for what the SDK raised; the API key never appears in it."""
    if isinstance(exc, LlmError):
        return exc
    # mid-stream, the HTTP client's own ReadTimeout comes through unwrapped
    if isinstance(exc, anthropic.APITimeoutError | TimeoutError) or _is_timeout(exc):
        error = LlmError("timeout", "the provider did not answer in time ([llm] timeout_secs)")
    elif isinstance(exc, anthropic.APIConnectionError):
        error = LlmError("api", f"cannot reach the provider: {exc.__cause__ or exc}")
    elif isinstance(exc, anthropic.APIStatusError):
        status, text = exc.status_code, _error_text(exc)
        if status in (401, 403):
            error = LlmError("auth", f"the provider refused the host's API key ({text})")
        elif status == 429:
            error = LlmError("rate-limited", Option(_retry_after(exc)))
        elif status in INVALID_STATUSES:
            error = invalid(text)
        elif status == 200:  # an `error` event inside a stream
            error = LlmError("api", f"the stream failed: {text}")
        else:
            error = LlmError("api", f"the provider answered {status}: {text}")
    else:
        error = LlmError("api", f"the call failed: {type(exc).__name__}: {exc}")
    if secret and isinstance(error.payload, str) and secret in error.payload:
        error.payload = error.payload.replace(secret, "[api key]")
    return error


@dataclass
class StreamState:
    """One streamed completion: the SDK's stream and what next() has seen of it."""

    stream: Any  # anthropic.AsyncStream[RawMessageStreamEvent]
    module: str
    input_tokens: int = 0
    output_tokens: int = 0
    stop_reason: str = ""
    pending: list[Variant] = field(default_factory=list)  # usage then stop, after message_stop
    usage_seen: bool = False  # the guest got the usage event
    finished: bool = False  # the stop event went out: next() is none from now on
    failed: LlmError | None = None
    counted: bool = False  # its tokens went into the module's budget

    async def next_event(self) -> Variant | None:
        """The next WIT stream-event (awaiting the provider), or None after the stop."""
        if self.failed is not None:
            raise self.failed
        while not self.pending:
            if self.finished:
                return None
            try:
                event = await self.stream.__anext__()
            except StopAsyncIteration:
                raise LlmError("api", "the stream ended before message_stop (cut short)") from None
            if event.type == "message_start":
                self.input_tokens = event.message.usage.input_tokens or 0
                self.output_tokens = event.message.usage.output_tokens or 0
            elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                return Variant("text-delta", event.delta.text)
            elif event.type == "message_delta":
                self.output_tokens = event.usage.output_tokens or self.output_tokens
                self.stop_reason = event.delta.stop_reason or self.stop_reason
            elif event.type == "message_stop":
                usage = usage_tree(self.input_tokens, self.output_tokens)
                self.pending = [Variant("usage", usage), Variant("stop", self.stop_reason)]
        event = self.pending.pop(0)
        if event.case == "usage":
            self.usage_seen = True
        else:
            self.finished = True
        return event

    async def close(self) -> None:
        """Close the HTTP response (the provider sees the connection go)."""
        await self.stream.close()

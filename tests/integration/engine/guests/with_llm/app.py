"""A guest for the llm capability: completions with tools, tool results, streams (timed as
they arrive), limits, dropped and abandoned streams, and every error kind. Each route takes
a JSON body and answers JSON; an LlmError is answered as {"error": kind, ...}."""

import json
import time
from typing import Any

from wr_sdk import Module, Request, llm

app = Module()
MODEL = "claude-test-1"
TOOLS = [
    llm.Tool(
        "stock",
        "Units in stock of a product",
        {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]},
    )
]
STOCK = {"mug-red": 3, "mug-blue": 0}
_kept: list[llm.Stream] = []  # /leave: referenced, so the guest never drops them


def _args(request: Request) -> dict[str, Any]:
    return json.loads(request.body or b"{}")


def _failure(exc: llm.LlmError) -> dict[str, Any]:
    return {
        "error": exc.kind,
        "message": exc.message,
        "retry_after": getattr(exc, "retry_after", None),
    }


def _completion(reply: llm.Completion) -> dict[str, Any]:
    return {
        "text": reply.text,
        "tool_calls": [[c.id, c.name, c.input] for c in reply.tool_calls],
        "stop_reason": reply.stop_reason,
        "usage": [reply.usage.input_tokens, reply.usage.output_tokens],
    }


@app.route("/complete")
def complete(request: Request) -> dict[str, Any]:
    """One completion with what the body asks for (system, tools, max_tokens, temperature)."""
    args = _args(request)
    try:
        reply = llm.complete(
            model=args.get("model", MODEL),
            system=args.get("system"),
            messages=[llm.user(args.get("prompt", "Hello"))],
            tools=TOOLS if args.get("tools") else (),
            max_tokens=args.get("max_tokens", 100),
            temperature=args.get("temperature"),
        )
    except llm.LlmError as exc:
        return _failure(exc)
    return _completion(reply)


@app.route("/tools")
def tools(request: Request) -> dict[str, Any]:
    """Ask, answer the model's tool calls from STOCK, ask again with the results."""
    messages: list[llm.Message] = [llm.user("How many red and blue mugs are left?")]
    reply = llm.complete(model=MODEL, messages=messages, tools=TOOLS, max_tokens=300)
    rounds = 1
    while reply.tool_calls:
        messages.append(reply.message())
        results = []
        for call in reply.tool_calls:
            sku = call.input.get("sku", "")
            if sku in STOCK:
                results.append(llm.ToolResult(call.id, str(STOCK[sku])))
            else:
                results.append(llm.ToolResult(call.id, f"no product {sku!r}", is_error=True))
        messages.append(llm.tool_results(*results))
        reply = llm.complete(model=MODEL, messages=messages, tools=TOOLS, max_tokens=300)
        rounds += 1
    return {"rounds": rounds, **_completion(reply)}


@app.route("/stream")
def stream(request: Request) -> dict[str, Any]:
    """Stream a completion, noting the wall-clock time each delta reached the guest."""
    args = _args(request)
    got: list[list[Any]] = []
    try:
        with llm.stream(
            model=MODEL,
            system=args.get("system"),
            messages=[llm.user("Stream please")],
            max_tokens=args.get("max_tokens", 100),
        ) as s:
            for delta in s:
                got.append([delta, time.time()])
    except llm.LlmError as exc:
        return {"deltas": got, **_failure(exc)}
    usage = [s.usage.input_tokens, s.usage.output_tokens] if s.usage else None
    return {"deltas": got, "usage": usage, "stop_reason": s.stop_reason}


@app.route("/streams")
def streams(request: Request) -> dict[str, Any]:
    """Open N streams and hold them all; report how many opened and the first refusal."""
    held = []
    for _ in range(_args(request)["n"]):
        try:
            held.append(llm.stream(model=MODEL, messages=[llm.user("x")], max_tokens=10))
        except llm.LlmError as exc:
            return {"opened": len(held), **_failure(exc)}
    return {"opened": len(held)}


@app.route("/drop")
def drop(request: Request) -> dict[str, Any]:
    """Read one delta, close the stream, then complete (the fake server answers that only
    once the first stream's connection is gone, or after 10 s)."""
    s = llm.stream(model=MODEL, messages=[llm.user("long story")], max_tokens=100)
    first = next(s)
    s.close()
    after = llm.complete(model=MODEL, messages=[llm.user("next")], max_tokens=10)
    return {"first": first, "after": after.text}


@app.route("/leave")
def leave(request: Request) -> dict[str, Any]:
    """Read one delta and return with the stream still open (the engine closes it)."""
    s = llm.stream(model=MODEL, messages=[llm.user("long story")], max_tokens=100)
    _kept.append(s)
    return {"first": next(s)}


@app.route("/bench")
def bench(request: Request) -> dict[str, Any]:
    """Milliseconds per llm.complete (one short answer), over N calls, timed in the guest."""
    n = _args(request)["n"]
    started = time.perf_counter()
    for _ in range(n):
        llm.complete(model=MODEL, messages=[llm.user("hi")], max_tokens=10)
    return {"complete_ms": (time.perf_counter() - started) / n * 1e3}

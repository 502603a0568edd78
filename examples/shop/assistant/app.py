"""The assistant module: answers questions about the shop with the LLM capability
(`wr_sdk.llm`), looking items up in the inventory module when the model asks for one.

Routes:
  POST /ask         {"question"}  -> {"answer", "lookups", "stop_reason", "usage"}
  POST /ask/stream  {"question"}  -> {"answer", "deltas", "stop_reason"} (streamed from the API)
"""

from __future__ import annotations

import json
from typing import Any

from wr_sdk import HttpError, Module, Request, call, config, llm

app = Module()
SYSTEM = "You are the shop's assistant. Answer in one short sentence."
FIND_ITEM = llm.Tool(
    name="find_item",
    description="Look an item of the shop up by its SKU: name, price and stock.",
    input_schema={"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]},
)
MAX_TURNS = 4


def _model() -> str:
    return config.get("LLM_MODEL", "claude-sonnet-4-5")


def _question(request: Request) -> str:
    question = request.json().get("question") if request.body else None
    if not isinstance(question, str) or not question.strip():
        raise HttpError(400, 'expected a JSON body with "question"')
    return question


def _find_item(sku: str) -> str:
    reply = call("http://shop.inventory/items/get", json.dumps({"sku": sku}).encode())
    return reply.text() if reply.ok else f"no item {sku!r}"


@app.route("/ask")
def ask(request: Request) -> dict[str, Any]:
    messages: list[llm.Message] = [llm.user(_question(request))]
    lookups = 0
    for _ in range(MAX_TURNS):
        reply = llm.complete(
            model=_model(), system=SYSTEM, messages=messages, tools=[FIND_ITEM], max_tokens=512
        )
        if not reply.tool_calls:
            return {
                "answer": reply.text,
                "lookups": lookups,
                "stop_reason": reply.stop_reason,
                "usage": {"input": reply.usage.input_tokens, "output": reply.usage.output_tokens},
            }
        messages.append(reply.message())
        results = []
        for use in reply.tool_calls:
            lookups += 1
            results.append(llm.ToolResult(use.id, _find_item(str(use.input.get("sku", "")))))
        messages.append(llm.tool_results(*results))
    raise HttpError(502, f"the model still wanted tools after {MAX_TURNS} turns")


@app.route("/ask/stream")
def ask_stream(request: Request) -> dict[str, Any]:
    with llm.stream(
        model=_model(), system=SYSTEM, messages=[llm.user(_question(request))], max_tokens=512
    ) as stream:
        deltas = list(stream)
    return {"answer": "".join(deltas), "deltas": len(deltas), "stop_reason": stream.stop_reason}

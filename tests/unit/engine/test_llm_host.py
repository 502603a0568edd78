"""The llm capability's pieces without an engine: the token budget's sliding minute, a guest
request turned into Messages API parameters (and refused before any call), SDK errors turned
into WIT errors with the API key kept out, against the fake API on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import anthropic
import pytest

from runtime.engine.llm_budget import TokenBudget
from runtime.engine.llm_upstream import Limits, LlmError, map_error, request_params
from runtime.engine.wit_tree import Option
from tests.infra.fake_anthropic import FakeAnthropic, Reply


def test_the_budget_refuses_once_the_minute_is_spent_and_says_when_it_has_room() -> None:
    budget = TokenBudget(100, workers=1)
    assert budget.wait_secs(now=0) == 0
    budget.spend(60, now=0)
    budget.spend(50, now=20)
    assert budget.wait_secs(now=30) == 30  # room again when the first 60 leave the window
    assert budget.wait_secs(now=59.5) == 1
    assert budget.wait_secs(now=60) == 0


def test_the_engine_budget_is_split_over_its_workers() -> None:
    assert TokenBudget(100, workers=3).share == 34
    assert TokenBudget(1, workers=4).share == 1


def _req(**over: Any) -> dict[str, Any]:
    req = {
        "model": "m",
        "messages": [{"role": "user", "content": [("text", "hi")]}],
        "system": None,
        "max-tokens": 10,
        "temperature": None,
        "tools": [],
    }
    return {**req, **over}


@pytest.mark.parametrize(
    ("over", "streaming", "expected"),
    [
        ({"max-tokens": 101}, False, "over this host's limit of 100"),
        ({"max-tokens": 0}, False, "at least 1"),
        ({"messages": []}, False, "at least one message"),
        ({"tools": [{"name": "t", "description": "", "input-schema": "{}"}]}, True, "not streamed"),
        ({"tools": [{"name": "t", "description": "", "input-schema": "[1"}]}, False, "not JSON"),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "content": [("tool-use", {"id": "a", "name": "t", "input": "[]"})],
                    }
                ]
            },
            False,
            "expected a JSON object",
        ),
    ],
)
def test_bad_requests_are_refused_before_any_call(
    over: dict[str, Any], streaming: bool, expected: str
) -> None:
    with pytest.raises(LlmError, match=expected) as caught:
        request_params(_req(**over), Limits(max_tokens=100), streaming)
    assert caught.value.case == "invalid-request"


def test_blocks_become_messages_api_blocks() -> None:
    params = request_params(
        _req(
            messages=[
                {"role": "user", "content": [("text", "q")]},
                {
                    "role": "assistant",
                    "content": [("tool-use", {"id": "t1", "name": "f", "input": '{"a": 1}'})],
                },
                {
                    "role": "user",
                    "content": [
                        ("tool-result", {"tool-use-id": "t1", "content": "2", "is-error": False})
                    ],
                },
            ],
            temperature=0.699999988079071,
        ),
        Limits(max_tokens=100),
        streaming=False,
    )
    assert params["messages"][1]["content"] == [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}
    ]
    assert params["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "t1", "content": "2", "is_error": False}
    ]
    assert params["extra_body"] == {"temperature": 0.7}


def _call(fake: FakeAnthropic, key: str) -> BaseException:
    async def go() -> BaseException:
        client = anthropic.AsyncAnthropic(api_key=key, base_url=fake.base_url, max_retries=0)
        try:
            await client.messages.create(
                model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        except Exception as exc:
            return exc
        finally:
            await client.close()
        raise AssertionError("the call succeeded")

    return asyncio.run(go())


def test_sdk_errors_map_to_wit_kinds(fake_anthropic: FakeAnthropic) -> None:
    fake_anthropic.script(
        Reply(status=429, error_type="rate_limit_error", retry_after=3),
        Reply(status=529, error_type="overloaded_error", error_message="Overloaded"),
        Reply(status=400, error_type="invalid_request_error", error_message="prompt is too long"),
    )
    key = fake_anthropic.api_key
    assert map_error(_call(fake_anthropic, key), key).wit().payload == Option(3)
    error = map_error(_call(fake_anthropic, key), key)
    assert (error.case, error.payload) == (
        "api",
        "the provider answered 529: overloaded_error: Overloaded",
    )
    error = map_error(_call(fake_anthropic, key), key)
    assert (error.case, error.payload) == (
        "invalid-request",
        "invalid_request_error: prompt is too long",
    )
    error = map_error(_call(fake_anthropic, "sk-wrong"), "sk-wrong")
    assert error.case == "auth" and "sk-wrong" not in error.payload


def test_the_key_is_taken_out_of_any_error_text() -> None:
    error = map_error(RuntimeError("bad header sk-secret-1"), "sk-secret-1")
    assert (
        error.case == "api" and "sk-secret-1" not in error.payload and "[api key]" in error.payload
    )

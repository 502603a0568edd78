"""The llm capability in a real engine against a fake Anthropic Messages API on loopback:
what the guest asks reaches the API, answers (text, tool calls, streams as they arrive) reach
the guest, the limits hold before any call, streams are closed upstream when dropped or left
open, errors arrive as their WIT kinds, and the engine lives through all of it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.infra.fake_anthropic import FakeAnthropic, Reply, ToolCall
from tests.infra.process import wait_until
from tests.integration.engine.conftest import Engine, module_toml

pytestmark = pytest.mark.slow

GUEST = Path(__file__).parent / "guests" / "with_llm"
MODULE = "example.llm"
MAX_TOKENS_LIMIT = 1000
STOCK_SCHEMA = {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}


@pytest.fixture(scope="module")
def llm_wasm() -> Path:
    """The with_llm test guest, built and precompiled like tests/infra/components.py does."""
    from runtime.engine.component_cache import ComponentCache
    from tests.infra.components import compiled_cache_dir
    from wrctl.build.cached import build_cached

    wasm = build_cached(GUEST)
    ComponentCache(compiled_cache_dir()).ensure(wasm)
    return wasm


def llm_section(fake: FakeAnthropic, api_key: str | None = None, **keys: Any) -> str:
    """[llm] for engine.toml, the key as a plain string (an engine run by hand)."""
    settings = {
        "api_key": api_key or fake.api_key,
        "base_url": fake.base_url,
        "max_tokens_limit": MAX_TOKENS_LIMIT,
        "timeout_secs": 2,
        **keys,
    }
    return "[llm]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()) + "\n"


@pytest.fixture
def llm_engine(
    llm_wasm: Path, start_engine: Callable[..., Engine], fake_anthropic: FakeAnthropic
) -> Callable[..., Engine]:
    """llm_engine(api_key=None, **module_keys) -> an engine with the guest as example.llm."""

    def start(api_key: str | None = None, **module_keys: Any) -> Engine:
        return start_engine(
            llm_section(fake_anthropic, api_key)
            + module_toml("llm", llm_wasm, capabilities=["llm"], **module_keys)
        )

    return start


def ask(engine: Engine, path: str, **args: Any) -> dict[str, Any]:
    status, _, body = engine.call(MODULE, path, json.dumps(args).encode())
    assert status == 200, body
    answer: dict[str, Any] = json.loads(body)
    return answer


def still_serves(engine: Engine, fake: FakeAnthropic) -> None:
    fake.script(Reply(text="still here"))
    assert ask(engine, "/complete")["text"] == "still here"


def test_complete_sends_system_messages_tools_and_returns_content(
    llm_engine: Callable[..., Engine], fake_anthropic: FakeAnthropic
) -> None:
    engine = llm_engine()
    fake_anthropic.script(
        Reply(
            text="Checking.",
            tool_calls=[ToolCall("toolu_01", "stock", {"sku": "mug-red"})],
            input_tokens=21,
            output_tokens=9,
        )
    )
    got = ask(
        engine,
        "/complete",
        system="You keep a shop.",
        prompt="Any red mugs?",
        tools=True,
        max_tokens=200,
        temperature=0.5,
    )
    assert got == {
        "text": "Checking.",
        "tool_calls": [["toolu_01", "stock", {"sku": "mug-red"}]],
        "stop_reason": "tool_use",
        "usage": [21, 9],
    }
    [request] = fake_anthropic.requests
    assert request.body == {
        "model": "claude-test-1",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Any red mugs?"}]}],
        "system": "You keep a shop.",
        "temperature": 0.5,
        "tools": [
            {
                "name": "stock",
                "description": "Units in stock of a product",
                "input_schema": STOCK_SCHEMA,
            }
        ],
    }
    sent_key = {k.lower(): v for k, v in request.headers.items()}
    assert fake_anthropic.api_key in (
        sent_key.get("x-api-key"),
        sent_key.get("authorization", "")[7:],
    )


def test_tool_use_and_tool_results_round_trip(
    llm_engine: Callable[..., Engine], fake_anthropic: FakeAnthropic
) -> None:
    engine = llm_engine()
    fake_anthropic.script(
        Reply(
            text="Let me look.",
            tool_calls=[
                ToolCall("toolu_1", "stock", {"sku": "mug-red"}),
                ToolCall("toolu_2", "stock", {"sku": "mug-teal"}),
            ],
        ),
        Reply(text="3 red mugs; teal is not a product."),
    )
    got = ask(engine, "/tools")
    assert (got["rounds"], got["text"], got["stop_reason"]) == (
        2,
        "3 red mugs; teal is not a product.",
        "end_turn",
    )
    second = fake_anthropic.requests[1].body
    assert second["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "How many red and blue mugs are left?"}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "stock", "input": {"sku": "mug-red"}},
                {
                    "type": "tool_use",
                    "id": "toolu_2",
                    "name": "stock",
                    "input": {"sku": "mug-teal"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": "3",
                    "is_error": False,
                },
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_2",
                    "content": "no product 'mug-teal'",
                    "is_error": True,
                },
            ],
        },
    ]


def test_a_stream_delivers_each_delta_before_the_next_is_sent(
    llm_engine: Callable[..., Engine], fake_anthropic: FakeAnthropic
) -> None:
    engine = llm_engine()
    chunks = ["The ", "quick ", "brown ", "fox."]
    fake_anthropic.script(Reply(text=chunks, delay=0.3, input_tokens=5, output_tokens=4))
    got = ask(engine, "/stream", system="Tell it.")
    assert [d for d, _ in got["deltas"]] == chunks
    assert (got["usage"], got["stop_reason"]) == ([5, 4], "end_turn")
    sent = fake_anthropic.requests[0].sent
    for (_, received), (_, next_sent) in zip(got["deltas"], sent[1:], strict=False):
        # the guest had delta i while the server had not yet written delta i+1
        assert received < next_sent, (got["deltas"], sent)
    body = fake_anthropic.requests[0].body
    assert body["stream"] is True and body["system"] == "Tell it." and "tools" not in body


def test_max_tokens_over_the_limit_is_refused_without_a_call(
    llm_engine: Callable[..., Engine], fake_anthropic: FakeAnthropic
) -> None:
    engine = llm_engine()
    got = ask(engine, "/complete", max_tokens=MAX_TOKENS_LIMIT + 1)
    assert got["error"] == "invalid-request"
    assert f"over this host's limit of {MAX_TOKENS_LIMIT}" in got["message"]
    got = ask(engine, "/stream", max_tokens=MAX_TOKENS_LIMIT + 1)
    assert got["error"] == "invalid-request"
    assert fake_anthropic.requests == []
    still_serves(engine, fake_anthropic)


def test_the_33rd_live_stream_is_refused(
    llm_engine: Callable[..., Engine], fake_anthropic: FakeAnthropic
) -> None:
    engine = llm_engine()
    got = ask(engine, "/streams", n=33)
    assert (got["opened"], got["error"]) == (32, "too-many-streams")
    assert len(fake_anthropic.requests) == 32  # the 33rd made no call
    fake_anthropic.reset()
    assert ask(engine, "/streams", n=32) == {"opened": 32}  # the last request's were closed
    still_serves(engine, fake_anthropic)


def test_a_dropped_stream_is_closed_upstream_at_once(
    llm_engine: Callable[..., Engine], fake_anthropic: FakeAnthropic
) -> None:
    engine = llm_engine()
    # the second answer waits (10 s at most) until the first stream's client is gone
    fake_anthropic.script(
        Reply(text=["first ", "second"], hold=True), Reply("after", wait_closed=0)
    )
    assert ask(engine, "/drop") == {"first": "first ", "after": "after"}
    held, after = fake_anthropic.requests
    assert held.client_gone is not None and after.answered is not None
    assert held.client_gone < after.answered  # closed while the request still ran
    still_serves(engine, fake_anthropic)


def test_a_stream_left_open_is_closed_when_the_request_ends(
    llm_engine: Callable[..., Engine], fake_anthropic: FakeAnthropic
) -> None:
    engine = llm_engine()
    fake_anthropic.script(Reply(text=["a", "b"], hold=True))  # pings for 30 s unless closed
    assert ask(engine, "/leave") == {"first": "a"}
    wait_until(lambda: fake_anthropic.requests[0].client_gone, 10, "the stream's connection to go")
    still_serves(engine, fake_anthropic)


def test_a_stream_outliving_the_request_deadline_fails_it_and_is_closed(
    llm_engine: Callable[..., Engine], fake_anthropic: FakeAnthropic
) -> None:
    engine = llm_engine(request_timeout_secs=1.5)
    fake_anthropic.script(Reply(text=["a"], hold=True))
    status, _, body = engine.call(MODULE, "/stream", b"{}")
    assert status == 504 and b"deadline of 1.5 s exceeded" in body
    wait_until(lambda: fake_anthropic.requests[0].client_gone, 10, "the stream's connection to go")
    still_serves(engine, fake_anthropic)


def test_the_module_token_budget_refuses_calls_before_they_are_made(
    llm_engine: Callable[..., Engine], fake_anthropic: FakeAnthropic
) -> None:
    engine = llm_engine(llm_tokens_per_minute=30)
    fake_anthropic.script(Reply(text="one", input_tokens=20, output_tokens=15))
    assert ask(engine, "/complete")["text"] == "one"
    got = ask(engine, "/complete")
    assert got["error"] == "budget-exceeded" and 1 <= got["retry_after"] <= 60
    assert ask(engine, "/stream")["error"] == "budget-exceeded"
    assert len(fake_anthropic.requests) == 1


def test_a_refused_api_key_is_an_auth_error_that_never_shows_the_key(
    llm_engine: Callable[..., Engine], fake_anthropic: FakeAnthropic
) -> None:
    wrong = "sk-ant-wrong-key-5a5a5a"
    engine = llm_engine(api_key=wrong)
    got = ask(engine, "/complete")
    assert got["error"] == "auth" and "authentication_error" in got["message"]
    assert wrong not in json.dumps(got)
    assert ask(engine, "/stream")["error"] == "auth"
    assert wrong not in engine.process.log_path.read_text(errors="replace")


def test_provider_errors_arrive_as_their_kinds_and_the_engine_lives(
    llm_engine: Callable[..., Engine], fake_anthropic: FakeAnthropic
) -> None:
    engine = llm_engine()
    pids = engine.worker_pids()
    fake_anthropic.script(
        Reply(status=429, error_type="rate_limit_error", retry_after=17),
        Reply(status=500, error_type="api_error", error_message="boom"),
        Reply(delay=3.0),  # over timeout_secs = 2
        Reply(text=["one ", "two ", "three"], cut_after=2),
        Reply(text=["x"], error_event=("overloaded_error", "Overloaded")),
    )
    got = ask(engine, "/complete")
    assert (got["error"], got["retry_after"]) == ("rate-limited", 17)
    got = ask(engine, "/complete")
    assert got["error"] == "api" and "500" in got["message"] and "boom" in got["message"]
    assert ask(engine, "/complete")["error"] == "timeout"
    got = ask(engine, "/stream")
    assert [d for d, _ in got["deltas"]] == ["one ", "two "] and got["error"] == "api"
    got = ask(engine, "/stream")
    assert got["error"] == "api" and "Overloaded" in got["message"]
    # the fake's own 400 (a temperature out of range): invalid-request
    got = ask(engine, "/complete", temperature=1.5)
    assert got["error"] == "invalid-request" and "temperature" in got["message"]
    assert len(fake_anthropic.requests) == 6  # no retries behind the guest's back
    still_serves(engine, fake_anthropic)
    assert engine.worker_pids() == pids


def test_the_api_key_is_a_namespace_secret_handed_over_at_registration(  # type: ignore[no-untyped-def]
    llm_wasm: Path, start_engine: Callable[..., Engine], fake_anthropic: FakeAnthropic, pki
) -> None:
    from tests.integration.engine.test_registration import FakeNode, serve_node

    node = FakeNode()  # hands out the secret "api-key" = "s3cret" of namespace example
    server, port = serve_node(node, pki.node("node-test"))
    try:
        fake_anthropic.api_key = "s3cret"
        section = llm_section(fake_anthropic).replace('"s3cret"', '{ secret = "api-key" }')
        engine = start_engine(
            section + module_toml("llm", llm_wasm, capabilities=["llm"]),
            control=f"http://127.0.0.1:{port}",
        )
        wait_until(lambda: node.registrations, 30, "the engine to register")
        assert [(s.namespace, s.key) for s in node.registrations[0].secrets] == [
            ("example", "api-key")
        ]
        fake_anthropic.script(Reply(text="keyed"))
        got = wait_until(
            lambda: (answer := ask(engine, "/complete")).get("text") and answer,
            10,
            "the key to reach the workers",
        )
        assert got["text"] == "keyed"
        assert "s3cret" not in engine.process.log_path.read_text(errors="replace")
    finally:
        server.stop(0)

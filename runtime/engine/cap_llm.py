"""Host side of the llm capability (`wruntime:llm/inference`): completions through the
Anthropic Messages API with the `anthropic` SDK, on the worker's host loop.

The API key is [llm] api_key: a namespace secret (`{ secret = "key" }`, resolved in the
namespace of the calling module, arriving with registration) or a plain string in an
engine.toml written by hand. One AsyncAnthropic client per key, made on first use; timeout
[llm] timeout_secs (a `timeout` error), and never past the request's deadline: a call that
outlives it is cancelled and the guest traps, the request answering 504 naming the deadline
(the request is over: no WIT error could still be acted on).

Limits, checked before any call: max-tokens over [llm] max_tokens_limit is an
invalid-request; a module over its token budget per minute (llm_budget.py) gets
budget-exceeded; a request holding [llm] max_streams live streams gets too-many-streams.
A stream the guest drops is closed upstream then; streams left open are closed when the
request ends. Errors map to the WIT's: 400 -> invalid-request, 401/403 -> auth, 429 ->
rate-limited (retry-after), 5xx or a broken connection -> api; the key is never in them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import anthropic
from wasmtime import WasmtimeError
from wasmtime.component import ResourceType

from runtime.engine.capabilities import REGISTRY, resolve_secret
from runtime.engine.guest_run import GuestRun
from runtime.engine.host_abi import add_direct_func, resource_rep
from runtime.engine.host_loop import DeadlineExceeded, host_loop
from runtime.engine.llm_budget import TokenBudget
from runtime.engine.llm_upstream import (
    MAX_RETRIES,
    Limits,
    LlmError,
    StreamState,
    map_error,
    request_params,
    response_tree,
    usage_tree,
)
from runtime.engine.wit_tree import Option, Own, Result, read, write
from runtime.wire import module_host

log = logging.getLogger("wr-engine")
INTERFACE = REGISTRY["llm"].imports[0]  # wruntime:llm/inference@<version>
STREAM_RESOURCE = 2  # our id for the host resource type `completion-stream`
CLOSE_SECS = 2.0  # how long the end of a request waits for its streams to close
_reps = itertools.count(1)


class RequestLlm:
    """One request's live streams, by resource rep."""

    def __init__(self, run: GuestRun) -> None:
        self.run = run
        self.streams: dict[int, StreamState] = {}


class LlmBinding:
    """Links `wruntime:llm/inference` into a worker's Linker."""

    name = "llm"

    @staticmethod
    def settings(node_config: Mapping[str, Any]) -> dict[str, Any]:
        """[llm] as engine.toml has it, the engine's worker count and the modules' own
        budgets (llm_tokens_per_minute), by module key."""
        section = dict(node_config.get("llm") or {})
        budgets = {
            module_host(m["namespace"], m["name"]): m.get("llm_tokens_per_minute")
            for m in node_config.get("module") or []
            if "llm" in (m.get("capabilities") or [])
        }
        return {"llm": section, "workers": node_config.get("workers") or 1, "budgets": budgets}

    def __init__(self, settings: Mapping[str, Any]) -> None:
        section = settings["llm"]
        self.api_key = section["api_key"]  # a string, or {"secret": key}
        self.base_url = str(section.get("base_url") or "https://api.anthropic.com")
        self.timeout = float(section.get("timeout_secs") or 60)
        self.max_streams = int(section.get("max_streams") or 32)
        self.limits = Limits(max_tokens=int(section.get("max_tokens_limit") or 8192))
        default = int(section.get("tokens_per_minute") or 100_000)
        workers = int(settings.get("workers") or 1)
        self.budgets = {
            key: TokenBudget(int(own or default), workers)
            for key, own in (settings.get("budgets") or {}).items()
        }
        self._secrets: dict[str, dict[str, str]] = {}
        self._clients: dict[str, anthropic.AsyncAnthropic] = {}  # by API key
        self._local = threading.local()
        self._type = ResourceType.host(STREAM_RESOURCE)

    # -- lifecycle ------------------------------------------------------------------------------

    def link(self, root: Any) -> None:
        with root.add_instance(INTERFACE) as li:
            li.add_resource("completion-stream", self._type, self._drop)
            add_direct_func(li, "complete", self._complete)
            add_direct_func(li, "complete-stream", self._complete_stream)
            add_direct_func(li, "[method]completion-stream.next", self._next)
            add_direct_func(li, "[method]completion-stream.usage", self._usage)

    def set_secrets(self, secrets: dict[str, dict[str, str]]) -> None:
        self._secrets = {ns: dict(values) for ns, values in secrets.items()}

    def begin(self, run: GuestRun) -> None:
        self._local.req = RequestLlm(run)

    def end(self, run: GuestRun) -> None:
        """Close the streams the guest left open (its instance is gone: no drop will come)."""
        req: RequestLlm | None = getattr(self._local, "req", None)
        self._local.req = None
        if req is None or not req.streams:
            return
        streams = list(req.streams.values())
        req.streams.clear()
        for state in streams:
            self._count(state)
        with contextlib.suppress(Exception):
            host_loop().run(_close_all(streams), CLOSE_SECS)

    def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        if clients:
            with contextlib.suppress(Exception):
                host_loop().run(_close_clients(clients), CLOSE_SECS)

    # -- helpers -------------------------------------------------------------------------------

    def _req(self) -> RequestLlm:
        req: RequestLlm | None = getattr(self._local, "req", None)
        if req is None:
            raise WasmtimeError("llm used outside a request")
        return req

    def _key(self, run: GuestRun) -> str:
        key = resolve_secret(self.api_key, self._secrets.get(run.spec.namespace, {}))
        if not key:
            name = self.api_key.get("secret") if isinstance(self.api_key, Mapping) else "api_key"
            raise LlmError(
                "auth",
                f"the API key (namespace secret {name!r} of {run.spec.namespace}) "
                "has not reached this engine",
            )
        return key

    async def _client(self, key: str) -> anthropic.AsyncAnthropic:
        client = self._clients.get(key)
        if client is None:  # made on the host loop: its HTTP pool belongs to that loop
            client = anthropic.AsyncAnthropic(
                api_key=key, base_url=self.base_url, timeout=self.timeout, max_retries=MAX_RETRIES
            )
            self._clients[key] = client
        return client

    def _check_budget(self, run: GuestRun) -> TokenBudget | None:
        budget = self.budgets.get(run.spec.key)
        if budget is not None and (wait := budget.wait_secs()):
            raise LlmError("budget-exceeded", wait)
        return budget

    def _count(self, state: StreamState) -> None:
        if not state.counted:
            state.counted = True
            budget = self.budgets.get(state.module)
            if budget is not None:
                budget.spend(state.input_tokens + state.output_tokens)

    def _call(self, run: GuestRun, coro: Any) -> Any:
        """Run coro on the host loop within the request's deadline; past it, trap (504)."""
        try:
            return host_loop().run_for(run, coro)
        except DeadlineExceeded:
            run.stopped = (504, run.deadline_message())
            raise WasmtimeError(run.deadline_message()) from None

    def _answer(self, context: Any, out: Any, fn: Callable[[], Any], keys: list[str]) -> None:
        """Write fn()'s value as `ok`, or the WIT error it raised as `err` (with the API key
        fn used, if any, taken out of its text)."""
        try:
            value = Result(True, fn())
        except WasmtimeError:
            raise
        except Exception as exc:
            error = map_error(exc, keys[0] if keys else None)
            value = Result(False, error.wit())
        write(context, out, value)

    # -- host functions --------------------------------------------------------------------------

    def _complete(self, context: Any, args: Any, _nargs: int, results: Any) -> None:
        req, tree = self._req(), read(args[0])
        run, keys = req.run, list[str]()

        def call() -> Any:
            params = request_params(tree, self.limits, streaming=False)
            budget = self._check_budget(run)
            keys.append(self._key(run))

            async def create() -> Any:
                client = await self._client(keys[0])
                return await client.messages.create(**params)

            message = self._call(run, create())
            if budget is not None:
                budget.spend(message.usage.input_tokens + message.usage.output_tokens)
            return response_tree(message)

        self._answer(context, results[0], call, keys)

    def _complete_stream(self, context: Any, args: Any, _nargs: int, results: Any) -> None:
        req, tree = self._req(), read(args[0])
        run, keys = req.run, list[str]()

        def call() -> Any:
            if len(req.streams) >= self.max_streams:
                raise LlmError("too-many-streams", self.max_streams)
            params = request_params(tree, self.limits, streaming=True)
            self._check_budget(run)
            keys.append(self._key(run))

            async def create() -> Any:
                client = await self._client(keys[0])
                return await client.messages.create(**params, stream=True)

            state = StreamState(self._call(run, create()), run.spec.key)
            rep = next(_reps)
            req.streams[rep] = state
            return Own(rep, STREAM_RESOURCE)

        self._answer(context, results[0], call, keys)

    def _stream(self, context: Any, handle: Any) -> tuple[RequestLlm, StreamState]:
        req = self._req()
        state = req.streams.get(resource_rep(context, handle))
        if state is None:  # a rep this request never handed out, or one already dropped
            raise WasmtimeError("unknown completion-stream")
        return req, state

    def _next(self, context: Any, args: Any, _nargs: int, results: Any) -> None:
        req, state = self._stream(context, args[0])

        def pull() -> Any:
            try:
                event = self._call(req.run, state.next_event())
            except WasmtimeError:
                raise
            except Exception as exc:
                state.failed = map_error(exc, None)
                self._count(state)
                raise state.failed from None
            if event is not None and event.case == "usage":
                self._count(state)
            return Option(event)

        self._answer(context, results[0], pull, [])

    def _usage(self, context: Any, args: Any, _nargs: int, results: Any) -> None:
        _, state = self._stream(context, args[0])
        usage = usage_tree(state.input_tokens, state.output_tokens) if state.usage_seen else None
        write(context, results[0], Option(usage))

    def _drop(self, _store: Any, rep: int) -> None:
        """The guest dropped a stream: close it upstream now (without waiting for it)."""
        with contextlib.suppress(Exception):
            req: RequestLlm | None = getattr(self._local, "req", None)
            state = req.streams.pop(rep, None) if req is not None else None
            if state is not None:
                self._count(state)
                asyncio.run_coroutine_threadsafe(state.close(), host_loop().loop)


async def _close_all(streams: list[StreamState]) -> None:
    await asyncio.gather(*(s.close() for s in streams), return_exceptions=True)


async def _close_clients(clients: list[anthropic.AsyncAnthropic]) -> None:
    await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)

"""Instances built ahead of their request: the request takes a fresh one, never one that served
before, and no state of one request is seen by the next."""

from __future__ import annotations

import json
from pathlib import Path

from runtime.engine.component_cache import ComponentCache
from runtime.engine.host import WasmHost
from runtime.engine.spec import ModuleSpec
from tests.infra.components import compiled_cache_dir
from tests.integration.engine.conftest import module_toml


def _host(wasm: Path, scratch: Path) -> WasmHost:
    artifact = ComponentCache(compiled_cache_dir()).ensure(wasm).artifact
    spec = ModuleSpec("testkit", "example", "1.0.0", str(artifact), 10.0, 256 << 20, 8 << 20)
    return WasmHost([spec], "http://127.0.0.1:9", scratch)


def _state(host: WasmHost, token: str) -> dict[str, object]:
    outcome = host.run("example.testkit", "POST", "/state", [("x-token", token)], b"")
    host.release()  # as the worker does after sending the response: builds the next one
    assert outcome.status == 200, outcome.body
    result: dict[str, object] = json.loads(outcome.body)
    return result


def test_each_request_takes_the_instance_built_for_it_and_leaves_nothing(
    components: dict[str, Path], tmp_path: Path
) -> None:
    host = _host(components["testkit"], tmp_path)
    host.prepare("example.testkit")
    waiting = host._ready["example.testkit"]
    first = _state(host, "a")
    assert first == {"before": 0, "seen": None, "token": "a", "work": first["work"]}
    # the waiting instance served "a" and was dropped; release() built a different one
    rebuilt = host._ready["example.testkit"]
    assert rebuilt is not waiting
    second = _state(host, "b")
    assert (second["before"], second["seen"], second["token"]) == (0, None, "b")
    assert host._ready["example.testkit"] is not rebuilt


def test_sequential_requests_on_one_worker_share_no_state(components, start_engine) -> None:  # type: ignore[no-untyped-def]
    engine = start_engine(module_toml("testkit", components["testkit"]), workers=1)
    for i in range(20):
        status, _, body = engine.call("example.testkit", "/state", headers={"x-token": f"t{i}"})
        assert status == 200
        result = json.loads(body)
        assert (result["before"], result["seen"], result["token"]) == (0, None, f"t{i}")

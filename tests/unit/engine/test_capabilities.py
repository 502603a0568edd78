"""The capability registry: import checks (runtime and WASI imports pass, capabilities need a
grant and a host side), what a node must configure, and what workers are told."""

from __future__ import annotations

import pytest

from runtime.engine.capabilities import (
    REGISTRY,
    ImportRejected,
    check_imports,
    grant_problem,
    implemented,
    missing_node_config,
    worker_settings,
)
from runtime.engine.config import EngineConfig

BASE = ["wasi:cli/stdin@0.2.0", "wruntime:runtime/log@0.1.0", "wruntime:runtime/outbound@0.1.0"]
SPAN = "wruntime:tracing/span@0.2.0"


def test_base_imports_pass() -> None:
    check_imports("example.echo", BASE, [])


def test_ungranted_capability_names_the_line_to_add() -> None:
    with pytest.raises(ImportRejected, match=r'add capabilities = \["db", "llm"\] to its'):
        check_imports("example.a", [*BASE, "wruntime:llm/inference@0.2.0"], ["db"])


def test_granted_capability_without_host_side(monkeypatch: pytest.MonkeyPatch) -> None:
    """An engine without a capability's host side (every one has one today) refuses it."""
    from dataclasses import replace

    from runtime.engine.capabilities import REGISTRY

    monkeypatch.setitem(REGISTRY, "llm", replace(REGISTRY["llm"], binding=None))  # type: ignore[index]
    with pytest.raises(ImportRejected, match='"llm" is granted, but this engine'):
        check_imports("example.a", ["wruntime:llm/inference@0.2.0"], ["llm"])


def test_tracing_is_implemented_and_passes_when_granted() -> None:
    assert set(implemented()) == {"db", "blobstore", "tracing", "llm"}
    check_imports("example.a", [*BASE, SPAN], ["tracing"])
    with pytest.raises(
        ImportRejected, match=f'imports {SPAN} but is not granted capability "tracing"'
    ):
        check_imports("example.a", [*BASE, SPAN], [])


def test_unknown_import() -> None:
    with pytest.raises(ImportRejected, match="imports acme:x/y, which wruntime does not provide"):
        check_imports("example.a", ["acme:x/y"], [])


def test_node_config_each_capability_needs() -> None:
    assert missing_node_config("tracing", {}) == []
    assert missing_node_config("db", {}) == ["database.url"]
    assert missing_node_config("db", {"database": {"url": "postgres://x"}}) == []
    problem = grant_problem("example.a", ["llm"], {})
    assert problem == (
        'module example.a is granted capability "llm", but this node\'s engine.toml does not '
        "set llm.api_key"
    )


def test_engine_config_refuses_a_grant_the_node_cannot_provide() -> None:
    module = {"name": "a", "namespace": "example", "version": "1.0.0", "wasm_path": "a.wasm"}
    EngineConfig.model_validate({"module": [module | {"capabilities": ["tracing"]}]})
    with pytest.raises(ValueError, match=r"does not set database\.url"):
        EngineConfig.model_validate({"module": [module | {"capabilities": ["db"]}]})


def test_workers_get_the_settings_of_granted_implemented_capabilities() -> None:
    config = EngineConfig.model_validate(
        {"otlp_endpoint": "http://127.0.0.1:4317", "limits": {"max_spans": 10}}
    ).model_dump(mode="json")
    assert worker_settings(config, []) == {}
    assert worker_settings(config, ["tracing", "tracing"]) == {
        "tracing": {"otlp_endpoint": "http://127.0.0.1:4317", "sample_ratio": 1.0, "max_spans": 10}
    }
    assert set(REGISTRY) == {"db", "blobstore", "tracing", "llm"}

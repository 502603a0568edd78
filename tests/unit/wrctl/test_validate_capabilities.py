"""`wrctl validate` reads a component's imports and refuses one importing a capability its
[[module]] is not granted, naming the module, the interface and the line to add."""

from __future__ import annotations

from pathlib import Path

import pytest
import wasmtime

from runtime.wire import COMPONENT_HEADER
from wrctl.config import load_cluster
from wrctl.config.component_imports import ComponentFormatError, component_imports
from wrctl.errors import ConfigError

CLUSTER = """\
[cluster]
name = "shop"

[manager]
host = "local"

[[node]]
name = "node-a"
host = "local"

[[module]]
namespace = "example"
name = "traced"
version = "1.0.0"
component = "traced.wasm"
"""


def _component(path: Path, *imports: str) -> Path:
    """A real (tiny) component importing these instances."""
    text = "".join(f'(import "{name}" (instance))' for name in imports)
    path.write_bytes(bytes(wasmtime.wat2wasm(f"(component {text})")))
    return path


def test_imports_are_read_without_compiling(tmp_path: Path) -> None:
    wasm = _component(tmp_path / "c.wasm", "wasi:cli/stdin@0.2.0", "wruntime:tracing/span@0.2.0")
    assert component_imports(wasm) == ["wasi:cli/stdin@0.2.0", "wruntime:tracing/span@0.2.0"]


def test_a_core_module_is_not_read_as_a_component(tmp_path: Path) -> None:
    path = tmp_path / "m.wasm"
    path.write_bytes(bytes(wasmtime.wat2wasm("(module)")))
    with pytest.raises(ComponentFormatError):
        component_imports(path)


def test_an_ungranted_import_is_refused_with_the_line_to_add(tmp_path: Path) -> None:
    _component(tmp_path / "traced.wasm", "wruntime:tracing/span@0.2.0")
    (tmp_path / "cluster.toml").write_text(CLUSTER)
    with pytest.raises(ConfigError) as err:
        load_cluster(tmp_path / "cluster.toml")
    text = str(err.value)
    assert "cluster.toml:" in text and "module[0].component" in text
    assert "module example.traced: imports wruntime:tracing/span@0.2.0" in text
    assert 'add capabilities = ["tracing"] to its [[module]]' in text


def test_the_grant_makes_it_valid(tmp_path: Path) -> None:
    _component(tmp_path / "traced.wasm", "wruntime:tracing/span@0.2.0")
    (tmp_path / "cluster.toml").write_text(CLUSTER + 'capabilities = ["tracing"]\n')
    assert load_cluster(tmp_path / "cluster.toml").module[0].capabilities == ["tracing"]


def test_a_granted_capability_without_a_host_side_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an engine without a capability's host side says (every one has one today)."""
    from dataclasses import replace

    from runtime.engine.capabilities import REGISTRY

    spec = replace(REGISTRY["blobstore"], binding=None)
    monkeypatch.setitem(REGISTRY, "blobstore", spec)  # type: ignore[index]
    _component(tmp_path / "traced.wasm", "wruntime:blobstore/store@0.1.0")
    (tmp_path / "cluster.toml").write_text(CLUSTER + 'capabilities = ["blobstore"]\n')
    with pytest.raises(
        ConfigError, match='"blobstore" is granted, but this wruntime does not provide'
    ):
        load_cluster(tmp_path / "cluster.toml")


def test_unreadable_imports_are_left_to_the_engine(tmp_path: Path) -> None:
    (tmp_path / "traced.wasm").write_bytes(COMPONENT_HEADER + b"\x0a\x05\x01")
    (tmp_path / "cluster.toml").write_text(CLUSTER)
    assert load_cluster(tmp_path / "cluster.toml").module[0].name == "traced"

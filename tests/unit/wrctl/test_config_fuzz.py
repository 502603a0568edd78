"""No input crashes the cluster.toml loader (Hypothesis): random TOML-ish text, and a valid file
with random values put anywhere, either load or raise ConfigError naming the file; and what
loads resolves into targets and renders config files that TOML parsers read back."""

from __future__ import annotations

import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomlkit
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from runtime.wire import COMPONENT_HEADER
from wrctl.bundle.build import build_bundles
from wrctl.config import load_cluster, resolve_targets
from wrctl.errors import ConfigError

FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

BASE: dict[str, Any] = {
    "cluster": {"name": "shop"},
    "manager": {"host": "local", "port": 9000},
    "defaults": {"format": "supervisor", "workdir": "/opt/wr"},
    "proxy": {
        "external_port": 8080,
        "egress_allowlist": ["api.example.com"],
        "route": [{"path": "/hi", "namespace": "example", "module": "echo", "methods": ["GET"]}],
    },
    "node": [{"name": "node-a", "host": "local"}, {"name": "node-b", "host": "10.0.1.51"}],
    "module": [
        {
            "namespace": "example",
            "name": "echo",
            "version": "1.0.0",
            "component": "echo.wasm",
            "nodes": ["node-a"],
            "env": {"GREETING": "hi", "KEY": {"secret": "api-key"}},
        }
    ],
}
TRICKY = [
    "local",
    "echo\n",
    "../../etc/passwd",
    "-oProxyCommand=touch x",
    "*",
    "https://x",
    "/__health",
    "/a/{id}",
    "😀",
    "~nosuchuser/x",
    "$(id)#e;#",
    "9001",
    "",
]
SCALARS = st.one_of(
    st.text(max_size=20),  # every character but surrogates, control characters included
    st.sampled_from(TRICKY),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(),
    st.booleans(),
    st.datetimes(),
    st.dates(),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
LINES = [
    *tomlkit.dumps(BASE).splitlines(),
    "[module.env]",
    "[[node]]",
    "[manager]",
    'env = { A = "b" }',
    'host = "local"',
    "engines = 3",
    "replicas = 2",
    "data_port = 9000",
    'name = "x"',
    "[",
    '"',
    "key = ",
]


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """BASE with a random value at a random place (an existing key, or a new one)."""
    doc: Any = tomlkit.parse(tomlkit.dumps(BASE)).unwrap()
    at = doc
    while True:
        if isinstance(at, dict):
            key = draw(st.sampled_from(sorted(at)) | st.text(min_size=1, max_size=8))
        elif isinstance(at, list) and at:
            key = draw(st.integers(min_value=0, max_value=len(at) - 1))
        else:
            break
        inner = at[key] if (isinstance(at, list) or key in at) else None
        if not isinstance(inner, dict | list) or draw(st.booleans()):
            at[key] = draw(VALUES)
            break
        at = inner
    try:
        return tomlkit.dumps(doc)
    except Exception:  # a value tomlkit cannot write (not a loader question)
        assume(False)
        raise


@st.composite
def _valid_with_any_text(draw: st.DrawFn) -> tuple[str, dict[str, str]]:
    """BASE with any text where any text is allowed (env values, the state URL's tail, a key
    path): such files load, so what they render is checked too."""
    doc: Any = tomlkit.parse(tomlkit.dumps(BASE)).unwrap()
    env = draw(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), st.text()))
    doc["module"][0]["env"] = env
    doc["defaults"]["ssh_key"] = draw(st.text())
    doc["manager"]["state"] = "postgresql://" + draw(st.text())
    return tomlkit.dumps(doc), env


def _check(root: Path, text: str, env: dict[str, str] | None = None) -> None:
    (root / "echo.wasm").write_bytes(COMPONENT_HEADER + b"echo")
    path = root / "cluster.toml"
    path.write_text(text, encoding="utf-8")
    try:
        config = load_cluster(path)
    except ConfigError as exc:
        assert exc.problems
        assert all(p.startswith(f"{path}:") for p in exc.problems), exc.problems
        return
    targets = resolve_targets(config)
    for bundle in build_bundles(targets, root / "out", "1.0.0"):
        with tarfile.open(bundle.path) as tar:
            for member in tar.getmembers():
                data = tar.extractfile(member)
                if data is None or not member.name.endswith(".toml"):
                    continue
                loaded = tomllib.loads(data.read().decode())
                if env is not None and (bundle.target, member.name) == (
                    "node-node-a",
                    "config/engine-0.toml",
                ):
                    assert loaded["module"][0].get("env", {}) == env


@FUZZ
@given(case=_valid_with_any_text())
def test_any_text_where_text_is_free_renders_literally(
    tmp_path: Path, case: tuple[str, dict[str, str]]
) -> None:
    text, env = case
    _check(tmp_path, text, {k: v for k, v in env.items() if "\x00" not in v})


@FUZZ
@given(text=_mutated())
def test_random_values_anywhere_load_or_fail_as_config_errors(tmp_path: Path, text: str) -> None:
    _check(tmp_path, text)


@FUZZ
@given(lines=st.lists(st.sampled_from(LINES) | st.text(max_size=30), max_size=40))
def test_random_toml_text_loads_or_fails_as_config_errors(tmp_path: Path, lines: list[str]) -> None:
    _check(tmp_path, "\n".join(lines))


@pytest.mark.parametrize(
    "raw", [b"\xff\xfe[cluster]", b'[cluster]\nname = "a"\n\x00', b"\x80" * 10, b""]
)
def test_bytes_that_are_not_toml(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "cluster.toml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError, match=rf"^{path}:"):
        load_cluster(path)

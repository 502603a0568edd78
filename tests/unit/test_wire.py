"""The wire contract lives in runtime/wire.py alone: no side repeats it, the SDK copy matches."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import wr_sdk._wire
from runtime import wire
from runtime.engine.capabilities import REGISTRY

REPO = Path(__file__).resolve().parents[2]
CONTRACT = {REPO / "runtime" / "wire.py", REPO / "sdk" / "wr_sdk" / "_wire.py"}
# Values that may be written out only in the contract (and the SDK's copy of it).
FACTS = (
    wire.INTERNAL_HEADER_PREFIX,
    wire.RESERVED_PATH_PREFIX,
    wire.GUEST_IO_DIR,
    wire.ADMIN_HEALTH_PATH,
    wire.METRICS_PATH,
)


def _sources() -> Iterator[Path]:
    for top in ("runtime", "sdk", "wrctl"):
        for path in sorted((REPO / top).rglob("*.py")):
            if path not in CONTRACT and "_pb2" not in path.name:
                yield path


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                out.add(id(first.value))
    return out


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, text) of every str or bytes constant that is not a docstring."""
    skip = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and id(node) not in skip:
            if isinstance(node.value, str):
                yield node.lineno, node.value
            elif isinstance(node.value, bytes):
                yield node.lineno, node.value.decode("latin-1")


def _module_keys(tree: ast.AST) -> Iterator[int]:
    """Lines of f-strings shaped like f"{namespace}.{name}@{version}"."""
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            shape = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            if "{}.{}@{}" in shape:
                yield node.lineno


def test_no_side_writes_the_contract_out_again() -> None:
    found = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        where = path.relative_to(REPO)
        found += [
            f"{where}:{line}: {value!r}"
            for line, value in _strings(tree)
            if any(fact in value.lower() for fact in FACTS)
        ]
        found += [f"{where}:{line}: module key built by hand" for line in _module_keys(tree)]
    assert not found, "use runtime.wire instead:\n" + "\n".join(found)


def _capability_lists(tree: ast.AST) -> Iterator[int]:
    names = set(wire.CAPABILITIES)
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            items = {e.value for e in node.elts if isinstance(e, ast.Constant)}
            if len(items & names) >= 2:
                yield node.lineno


def test_the_capability_list_exists_once() -> None:
    found = [
        f"{path.relative_to(REPO)}:{line}"
        for path in _sources()
        for line in _capability_lists(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert not found, "use runtime.wire.CAPABILITIES / Capability:\n" + "\n".join(found)


def test_every_capability_has_its_wit_package_and_interfaces() -> None:
    assert tuple(REGISTRY) == wire.CAPABILITIES
    for capability, spec in REGISTRY.items():
        wit = (REPO / "wit" / "deps" / capability / f"{capability}.wit").read_text()
        assert f"package {spec.package};" in wit
        for interface in spec.interfaces:
            assert f"interface {interface} {{" in wit
        assert all(name.startswith(f"wruntime:{capability}/") for name in spec.imports)


def test_sdk_copy_equals_the_contract() -> None:
    copied = {k: v for k, v in vars(wr_sdk._wire).items() if k.isupper()}
    assert copied  # the guest needs at least the health path and the io dir
    assert copied == {k: getattr(wire, k, None) for k in copied}


def test_contract_imports_only_the_standard_library() -> None:
    # wrctl imports it at start-up, and the SDK's copy is only honest while it stays plain.
    code = (
        "import sys; before = set(sys.modules); import runtime.wire; "
        "print(' '.join(sorted(m for m in set(sys.modules) - before "
        "if m.split('.')[0] not in sys.stdlib_module_names)))"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert run.stdout.split() == ["runtime", "runtime.wire"], run.stderr


def test_module_key_round_trip() -> None:
    key = wire.module_key("example", "echo", "1.2.0")
    assert key == "example.echo@1.2.0"
    assert wire.split_module_key(key) == ("example", "echo", "1.2.0")
    assert wire.module_host("example", "echo") == "example.echo"


@pytest.mark.parametrize("key", ["example.echo", "echo@1.0.0", ".echo@1", "example.@1", "a.b@"])
def test_split_module_key_refuses_other_shapes(key: str) -> None:
    with pytest.raises(ValueError, match="is not a module key"):
        wire.split_module_key(key)


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("/items/{id}", None),
        ("/", None),
        ("items", "must start with '/'"),
        ("/__health", "reserved for the runtime"),
        ("/__anything/x", "reserved for the runtime"),
        ("/items/{id}.json", "a parameter must be a whole segment"),
        ("/files/{*rest}", "a parameter must be a whole segment"),
        ("/a b", "only URL path characters"),
        ("/a\n", "only URL path characters"),
        ("/caf%C3%A9/~x/a:b@c", None),
    ],
)
def test_route_path_rules(path: str, problem: str | None) -> None:
    found = wire.route_path_problem(path)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found


def test_route_shapes_equal_when_the_proxy_matches_the_same_requests() -> None:
    assert wire.route_shape("/items/{id}") == wire.route_shape("/items/{key}/")
    assert wire.route_shape("/items") == wire.route_shape("/items/")
    assert wire.route_shape("/items/{id}") != wire.route_shape("/items/all")
    assert wire.route_segments("/") == []


def test_method_tokens() -> None:
    assert wire.method_problem("PATCH") is None
    assert wire.method_problem("GET POST") == "'GET POST' is not an HTTP method token"
    assert wire.method_problem("GET\n") == "'GET\\n' is not an HTTP method token"


@pytest.mark.parametrize(
    ("entry", "ok"),
    [
        ("api.example.com", True),
        ("*.Example.com", True),
        ("localhost", True),
        ("https://x", False),
        ("*", False),
        ("*.*.example.com", False),
        ("api.example.com\n", False),
        ("", False),
        ("a..b", False),
    ],
)
def test_egress_entries(entry: str, ok: bool) -> None:
    assert (wire.egress_domain_problem(entry) is None) is ok

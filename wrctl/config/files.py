"""Rules for the files cluster.toml names: a component must be a WebAssembly component, a
schema must compile, a key must be a readable file. Where a file lives is the user's choice
(`../echo/schemas/echo.proto` from a sibling example is fine); what it is, is checked."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from runtime.wire import COMPONENT_HEADER, CORE_MODULE_HEADER


def file_problem(path: Path) -> str | None:
    """Why path is not a readable regular file (symbolic links followed), or None."""
    try:
        if path.is_file():
            with path.open("rb"):
                return None
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    if path.exists():
        return f"{path} is not a regular file"
    return f"file not found: {path}"


def component_problem(path: Path) -> str | None:
    """Why path is not a WebAssembly component (by its header), or None."""
    problem = file_problem(path)
    if problem:
        return problem
    try:
        with path.open("rb") as f:
            head = f.read(len(COMPONENT_HEADER))
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    if head == COMPONENT_HEADER:
        return None
    if head == CORE_MODULE_HEADER:
        return (
            f"{path} is a core WebAssembly module, not a component "
            "(build modules with `wrctl build`, which makes components)"
        )
    return (
        f"{path} is not a WebAssembly component "
        f"(expected a file starting with {COMPONENT_HEADER.hex(' ')})"
    )


def import_problems(path: Path, module: str, granted: Iterable[str]) -> list[str]:
    """What the component at path imports that module may not have with these grants: the
    engine would refuse it at load, so `wrctl validate` says so first (same words). Imports
    that cannot be read are left to the engine's check at load."""
    from runtime.engine.capabilities import REGISTRY, capability_of, import_problem
    from wrctl.config.component_imports import ComponentFormatError, component_imports

    try:
        names = component_imports(path)
    except (OSError, ComponentFormatError, UnicodeDecodeError):
        return []
    grants = set(granted)
    problems = []
    for name in sorted(set(names)):
        problem = import_problem(module, name, grants)
        capability = capability_of(name)
        if problem is None and capability is not None and REGISTRY[capability].binding is None:
            problem = (
                f'module {module}: imports {name}; capability "{capability}" is granted, '
                "but this wruntime does not provide its host side yet"
            )
        if problem:
            problems.append(problem)
    return problems


def schema_problem(path: Path, compile_it: bool) -> str | None:
    """Why path is not a readable .proto file or, with compile_it, one protoc accepts."""
    problem = file_problem(path)
    if problem or not compile_it:
        return problem
    from wrctl.schemas import SchemaError, compile_schema

    try:
        compile_schema(path)
    except SchemaError as exc:
        return str(exc)
    return None

"""Rules for the files cluster.toml names: a component must be a WebAssembly component, a
schema must compile, a key must be a readable file. Where a file lives is the user's choice
(`../echo/schemas/echo.proto` from a sibling example is fine); what it is, is checked."""

from __future__ import annotations

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

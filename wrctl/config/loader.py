"""Load cluster.toml, validate it with pydantic, report problems as file:line:col."""

from __future__ import annotations

import difflib
import re
import tomllib
from pathlib import Path
from typing import Any, get_origin

from pydantic import BaseModel, ValidationError

from wrctl.config.checks import cluster_problems
from wrctl.config.locate import locate
from wrctl.config.model import UNION_TAGS, ClusterConfig
from wrctl.config.runtime_rules import Loc
from wrctl.errors import ConfigError


def load_cluster(path: str | Path, *, compile_schemas: bool = False) -> ClusterConfig:
    """Read and validate a cluster.toml; raise ConfigError listing every problem with its place.
    compile_schemas also runs protoc over every schema (`wrctl validate` does; it takes time)."""
    path = Path(path)
    text = _read(path)
    data = _parse(path, text)
    if "source" in data:  # a field of the model, but not one a file may set
        line, col = locate(text, ("source",))
        raise ConfigError([f"{path}:{line}:{col}: source: unknown key"])
    try:
        config = ClusterConfig.model_validate({**data, "source": path})
    except ValidationError as exc:
        raise ConfigError(_problems(path, text, exc)) from None
    problems = [
        f"{path}:{line}:{col}: {_dotted(loc)}: {message}"
        for loc, message in cluster_problems(config, path.parent, compile_schemas)
        for line, col in [locate(text, loc)]
    ]
    if problems:
        raise ConfigError(problems)
    return config


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found (expected a cluster.toml)"]) from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise ConfigError([f"{path}:{line}:1: not UTF-8 text (expected a TOML file)"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None


_TOMLLIB_PLACE = re.compile(r"(.*) \((?:at line (\d+), column (\d+)|at end of document)\)", re.S)


def _parse(path: Path, text: str) -> dict[str, Any]:
    """The TOML document as plain values, or ConfigError naming the place tomllib stopped at
    (the end of the document for an unterminated value)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        refused = str(exc)
    except RecursionError:
        raise ConfigError([f"{path}:1:1: not valid TOML: nested too deeply"]) from None
    placed = _TOMLLIB_PLACE.fullmatch(refused)
    reason = placed[1] if placed else refused
    if placed and placed[2]:
        line, col = int(placed[2]), int(placed[3])
    else:
        lines = text.split("\n")
        line, col = len(lines), len(lines[-1]) + 1
    raise ConfigError([f"{path}:{line}:{col}: not valid TOML: {reason}"])


def _problems(path: Path, text: str, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = _model_loc(tuple(err["loc"]), err["type"])
        line, col = locate(text, loc)
        out.append(f"{path}:{line}:{col}: {_dotted(loc) or '(top level)'}: {_message(err, loc)}")
    return out


def _model_loc(loc: Loc, kind: str) -> Loc:
    """Drop pydantic's union-branch tags (`str`, `SecretRef`) from a location. The last part
    of an unknown or missing key is the user's key, even when it is spelled like a tag."""
    if kind in {"extra_forbidden", "missing"} and loc:
        return (*(p for p in loc[:-1] if p not in UNION_TAGS), loc[-1])
    return tuple(p for p in loc if p not in UNION_TAGS)


def _message(err: Any, loc: Loc) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        choices = _fields_at(loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), choices, n=1)
        hint = (
            f"; did you mean {close[0]!r}?" if close else f"; expected one of: {', '.join(choices)}"
        )
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind in {"string_type", "int_type", "int_parsing", "bool_type", "list_type", "dict_type"}:
        return f"{msg} (got {err['input']!r})"
    if kind == "literal_error":
        return f"{msg}, got {err['input']!r}"
    return msg


def _fields_at(loc: Loc) -> list[str]:
    """Names a user may write at loc (aliases where a field has one)."""
    model: type[BaseModel] = ClusterConfig
    map_key_next = False
    for part in loc:
        if isinstance(part, int) or map_key_next:
            map_key_next = False
            continue
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None) if field else None
        inner = _model_in(annotation)
        if inner is None:
            return []
        model = inner
        map_key_next = get_origin(annotation) is dict
    return sorted((f.alias or name) for name, f in model.model_fields.items() if name != "source")


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found:
            return found
    return None


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out

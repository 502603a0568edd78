"""Load cluster.toml, validate it with pydantic, report problems as file:line:col."""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Any, get_origin

from pydantic import BaseModel, ValidationError

from wrctl.config.locate import locate
from wrctl.config.model import UNION_TAGS, ClusterConfig
from wrctl.config.runtime_rules import Loc, runtime_problems
from wrctl.errors import ConfigError


def load_cluster(path: str | Path) -> ClusterConfig:
    """Read and validate a cluster.toml; raise ConfigError listing every problem with its place."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found (expected a cluster.toml)"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
    data = _parse(path, text)
    try:
        config = ClusterConfig.model_validate({**data, "source": path})
    except ValidationError as exc:
        raise ConfigError(_problems(path, text, exc)) from None
    problems = [
        f"{path}:{line}:{col}: {_dotted(loc)}: {message}"
        for loc, message in _cross_checks(config, path.parent)
        for line, col in [locate(text, loc)]
    ]
    if problems:
        raise ConfigError(problems)
    return config


def _parse(path: Path, text: str) -> dict[str, Any]:
    """The TOML document as plain values. tomllib reads it (a fraction of tomlkit's start-up
    time); only a document it refuses goes to tomlkit, which says where the problem is."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        pass
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        data: dict[str, Any] = tomlkit.parse(text).unwrap()
    except ParseError as exc:
        reason = str(exc).split(" at line ")[0]
        raise ConfigError([f"{path}:{exc.line}:{exc.col}: not valid TOML: {reason}"]) from None
    return data


def _problems(path: Path, text: str, exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = _model_loc(tuple(err["loc"]))
        line, col = locate(text, loc)
        out.append(f"{path}:{line}:{col}: {_dotted(loc) or '(top level)'}: {_message(err, loc)}")
    return out


def _model_loc(loc: Loc) -> Loc:
    """Drop pydantic's union-branch tags (`str`, `SecretRef`) from a location."""
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


def _cross_checks(config: ClusterConfig, base: Path) -> list[tuple[Loc, str]]:
    """Rules that span several tables: unique names, references, files that must exist, and
    the runtime's own rules (routes, deadlines)."""
    problems: list[tuple[Loc, str]] = []
    node_names = [n.name for n in config.node]
    for i, node in enumerate(config.node):
        if node.name in node_names[:i]:
            problems.append((("node", i, "name"), f"duplicate node name {node.name!r}"))
    seen: set[tuple[str, str]] = set()
    for i, mod in enumerate(config.module):
        if (mod.namespace, mod.name) in seen:
            problems.append((("module", i, "name"), f"duplicate module {mod.namespace}.{mod.name}"))
        seen.add((mod.namespace, mod.name))
        for j, wanted in enumerate(mod.nodes or []):
            if wanted not in node_names:
                close = difflib.get_close_matches(wanted, node_names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append((("module", i, "nodes", j), f"unknown node {wanted!r}{hint}"))
        if mod.nodes is not None and not mod.nodes:
            problems.append((("module", i, "nodes"), "must list at least one node (or be omitted)"))
        for key, rel in (("component", mod.component), ("schema", mod.schema_)):
            if rel is not None and not (base / rel).is_file():
                problems.append(((("module", i, key)), f"file not found: {base / rel}"))
    hosts: list[tuple[Loc, str, str | None]] = [
        (("manager",), config.manager.host, config.manager.workdir)
    ]
    hosts += [(("node", i), n.host, n.workdir) for i, n in enumerate(config.node)]
    for loc, host, workdir in hosts:
        effective = workdir or config.defaults.workdir or ""
        if host != "local" and not effective.startswith("/"):
            where = (*loc, "workdir") if workdir else ("defaults", "workdir")
            problems.append(
                (where, f"{effective!r} must be an absolute path for remote host {host!r}")
            )
    signing_key = config.bundle.signing_key
    if signing_key is not None and not (base / signing_key).expanduser().is_file():
        problems.append((("bundle", "signing_key"), f"file not found: {base / signing_key}"))
    return problems + runtime_problems(config)

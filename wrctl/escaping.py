"""Writing a value into another language, once per language: shell words, TOML, YAML
(compose), supervisord's INI, systemd units and Dockerfiles. Every command wrctl runs on a
host quotes its values with `quote`; every template renders values through these filters
(wrctl/templates.py), and refuses, with UnsafeValue, what a syntax cannot hold."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_TOML_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


class UnsafeValue(ValueError):
    """A value that a generated file's syntax cannot hold (say, a newline in a unit line)."""


def quote(value: str | Path) -> str:
    """value as one shell word (the only way values reach a shell command on a host)."""
    return shlex.quote(str(value))


def one_line(value: object) -> object:
    """Every value a template renders passes here (jinja's finalize): whatever a filter did
    or did not do, no value can start a line of its own in a generated file."""
    if isinstance(value, str) and _CONTROL.search(value):
        raise UnsafeValue(f"{value!r}: a control character cannot be written into this file")
    return value


def toml(value: object) -> str:
    """A TOML value: strings as basic strings in UTF-8 (escapes only where TOML needs them;
    JSON's surrogate pairs, which TOML refuses, never appear), lists, inline tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if _SURROGATE.search(value):
            raise UnsafeValue(f"{value!r}: a lone surrogate is not a character TOML can hold")
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + _CONTROL.sub(_toml_escape, escaped) + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml(v)}" for k, v in value.items()) + " }"
    raise UnsafeValue(f"{value!r}: no TOML form for a {type(value).__name__}")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else toml(key)


def _toml_escape(found: re.Match[str]) -> str:
    char = found.group()
    return _TOML_ESCAPES.get(char) or f"\\u{ord(char):04x}"


def yaml(value: object) -> str:
    """A YAML flow value for compose.yaml: JSON with characters written as themselves (YAML
    parsers differ on surrogate-pair escapes), control characters escaped, and `$` doubled
    (compose interpolates `$VAR`)."""
    text = json.dumps(value, ensure_ascii=False)
    if _SURROGATE.search(text):
        raise UnsafeValue(f"{value!r}: a lone surrogate is not a character YAML can hold")
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text).replace("$", "$$")


def supervisor(value: str) -> str:
    """A word of a supervisord program line (command=): `%` doubled (its interpolation)."""
    return value.replace("%", "%%")


def supervisor_env(value: str) -> str:
    """A value of supervisord's environment=KEY="value",...: quoted (its shlex has no
    escapes, so a value holding both kinds of quote cannot be written), `%` doubled."""
    for mark in ('"', "'"):
        if mark not in value:
            return mark + supervisor(value) + mark
    raise UnsafeValue(f"{value!r}: supervisord's environment= cannot hold both ' and \"")


def systemd_exec(value: str) -> str:
    """One argument of ExecStart=: `$` (variable expansion) escaped, then as systemd_env."""
    return systemd_env(value.replace("$", "$$"))


def systemd_env(value: str) -> str:
    """One word of a systemd unit line (Environment="KEY=value"): quoted when it needs it,
    `%` specifiers escaped."""
    escaped = value.replace("%", "%%")
    if re.fullmatch(r"[A-Za-z0-9_@%$+=:,./-]+", escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dockerfile(value: str) -> str:
    """A Dockerfile ARG/ENV value: double-quoted, `\\`, `"` and `$` escaped."""
    return '"' + re.sub(r'(["\\$])', r"\\\1", value) + '"'

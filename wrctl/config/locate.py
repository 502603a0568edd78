"""Find the line and column of a key path in TOML text, for error messages.

The TOML parsers keep no positions, so this walks the raw lines: table headers,
array-of-tables counts and `key =` assignments (dotted keys and inline tables included).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_-]+))*)\s*="""
)
_PART = re.compile(r"""\s*("[^"]*"|'[^']*'|[A-Za-z0-9_-]+)\s*(?:\.|$)""")

Path = Sequence[str | int]


def _split_key(key: str) -> list[str]:
    return [m.group(1).strip("\"'") for m in _PART.finditer(key)]


def locate(text: str, path: Path) -> tuple[int, int]:
    """Best (line, column), both 1-based, for path; the nearest enclosing item when exact fails."""
    best: tuple[int, int, int] = (0, 1, 1)  # (matched depth, line, col)
    current: list[str | int] = []
    aot_counts: dict[tuple[str | int, ...], int] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            keys: list[str | int] = list(_split_key(header.group(2)))
            if header.group(1) == "[[":
                index = aot_counts.get(tuple(keys), -1) + 1
                aot_counts[tuple(keys)] = index
                keys.append(index)
            else:
                keys = _with_aot_indices(keys, aot_counts)
            current = keys
            depth = _common(current, path)
            if depth == len(current) and depth > best[0]:
                best = (depth, lineno, line.index("[") + 1)
            continue
        key = _KEY.match(line)
        if not key:
            continue
        full = current + list(_split_key(key.group(1)))
        depth = _common(full, path)
        if depth == len(full) and depth > best[0]:
            best = (depth, lineno, len(line) - len(line.lstrip()) + 1)
            rest = path[depth:]
            if rest and isinstance(rest[0], str):  # inside an inline table on this line
                inner = re.search(rf"""[{{,]\s*["']?{re.escape(rest[0])}["']?\s*=""", line)
                if inner:
                    col = inner.start() + len(inner.group(0)) - len(inner.group(0).lstrip("{, "))
                    best = (depth + 1, lineno, col + 1)
    return best[1], best[2]


def _with_aot_indices(
    keys: list[str | int], aot_counts: dict[tuple[str | int, ...], int]
) -> list[str | int]:
    """`[module.env]` after `[[module]]` refers to the latest module table."""
    out: list[str | int] = []
    for key in keys:
        out.append(key)
        index = aot_counts.get(tuple(out))
        if index is not None:
            out.append(index)
    return out


def _common(a: Sequence[str | int], b: Sequence[str | int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n

"""Semver requirements for x-wr-version: `^1.2`, `~1.2`, `>=1.0,<2`, `1.2.0` (exact), `1.2`, `*`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import semver

from runtime.wire import VERSION_HEADER

_PARTIAL = re.compile(
    r"(?P<major>0|[1-9]\d*|[*xX])(?:\.(?P<minor>0|[1-9]\d*|[*xX]))?"
    r"(?:\.(?P<patch>0|[1-9]\d*|[*xX]))?(?:-(?P<pre>[0-9A-Za-z.-]+))?"
)
_OP = re.compile(r"(\^|~|>=|<=|>|<|=)?\s*(.+)")

Check = Callable[[semver.Version], bool]


class InvalidRequirement(ValueError):
    """An x-wr-version value that is not a semver requirement."""


@dataclass(frozen=True)
class _Partial:
    major: int | None
    minor: int | None
    patch: int | None
    pre: str | None

    def floor(self) -> semver.Version:
        return semver.Version(
            self.major or 0, self.minor or 0, self.patch or 0, prerelease=self.pre
        )


def _parse_partial(text: str, whole: str) -> _Partial:
    match = _PARTIAL.fullmatch(text)
    if not match:
        raise InvalidRequirement(f"{VERSION_HEADER} {whole!r}: {text!r} is not a version")
    parts: list[int | None] = []
    wild = False
    for key in ("major", "minor", "patch"):
        raw = match.group(key)
        if raw is None or raw in "*xX" or wild:
            wild = True
            parts.append(None)
        else:
            parts.append(int(raw))
    if match.group("pre") and parts[2] is None:
        raise InvalidRequirement(f"{VERSION_HEADER} {whole!r}: a pre-release needs a full version")
    return _Partial(parts[0], parts[1], parts[2], match.group("pre"))


def _upper_of_prefix(p: _Partial) -> semver.Version | None:
    """The exclusive bound of the versions a partial version like 1.2 or 1 covers."""
    if p.major is None:
        return None
    if p.minor is None:
        return semver.Version(p.major + 1, 0, 0)
    return semver.Version(p.major, p.minor + 1, 0)


def _caret_upper(p: _Partial) -> semver.Version | None:
    if p.major is None:
        return None
    if p.major > 0 or p.minor is None:
        return semver.Version(p.major + 1, 0, 0)
    if p.minor > 0 or p.patch is None:
        return semver.Version(0, p.minor + 1, 0)
    return semver.Version(0, 0, p.patch + 1)


def _range(low: semver.Version, high: semver.Version | None) -> Check:
    if high is None:
        return lambda v: v >= low
    return lambda v: low <= v < high


def _comparator(text: str, whole: str) -> tuple[Check, _Partial]:
    match = _OP.fullmatch(text.strip())
    if not match:
        raise InvalidRequirement(f"{VERSION_HEADER} {whole!r}: empty comparator")
    op, rest = match.group(1) or "", match.group(2).strip()
    p = _parse_partial(rest, whole)
    low = p.floor()
    exact = p.patch is not None
    if op == "^":
        return _range(low, _caret_upper(p)), p
    if op == "~":
        high = (
            _upper_of_prefix(p) if p.minor is None else semver.Version(p.major or 0, p.minor + 1, 0)
        )
        return _range(low, high), p
    if op in {"", "="}:
        if exact:
            return (lambda v: v == low), p
        return _range(low, _upper_of_prefix(p)), p
    if op == ">=":
        return (lambda v: v >= low), p
    if op == "<":
        return (lambda v: v < low), p
    if op == ">":
        if exact:
            return (lambda v: v > low), p
        high = _upper_of_prefix(p)
        return (lambda v: high is not None and v >= high), p
    # "<="
    if exact:
        return (lambda v: v <= low), p
    high = _upper_of_prefix(p)
    return (lambda v: high is None or v < high), p


@dataclass(frozen=True)
class Requirement:
    """A parsed requirement: all comparators must hold (comma means AND)."""

    text: str
    checks: tuple[Check, ...]
    pre_triples: frozenset[tuple[int, int, int]]

    def matches(self, version: semver.Version) -> bool:
        # As in Cargo and npm: a pre-release only matches a comparator naming the same triple.
        if version.prerelease and (
            (version.major, version.minor, version.patch) not in self.pre_triples
        ):
            return False
        return all(check(version) for check in self.checks)


def parse_requirement(text: str) -> Requirement:
    """Parse a requirement; a bare full version is exact, a bare partial one (`1.2`) a prefix."""
    stripped = text.strip()
    if not stripped:
        raise InvalidRequirement(
            f"{VERSION_HEADER} is empty (expected e.g. ^1.2, ~1.2, >=1.0,<2, 1.2.0)"
        )
    checks: list[Check] = []
    pre: set[tuple[int, int, int]] = set()
    for part in stripped.split(","):
        check, partial = _comparator(part, text)
        checks.append(check)
        if partial.pre is not None:
            pre.add((partial.major or 0, partial.minor or 0, partial.patch or 0))
    return Requirement(stripped, tuple(checks), frozenset(pre))

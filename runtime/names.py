"""Validation of the identifiers every component shares: names, namespaces and versions."""

from __future__ import annotations

import re

import semver

NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,22}[a-z0-9])?")  # use fullmatch
NAME_RULE = "1-24 characters of [a-z0-9-], starting and ending with a letter or digit"


class InvalidName(ValueError):
    """An identifier or version that breaks the shared naming rules."""


def check_name(value: str, field: str) -> str:
    """Return value when it is a valid module/namespace/node name, else raise naming the field."""
    if not NAME_RE.fullmatch(value):
        raise InvalidName(f"{field}: {value!r} is not a valid name ({NAME_RULE})")
    return value


def check_version(value: str, field: str) -> str:
    """Return value when it is a semantic version such as 1.2.0, else raise naming the field."""
    if not semver.Version.is_valid(value):
        raise InvalidName(f"{field}: {value!r} is not a semantic version (expected like 1.2.0)")
    return value

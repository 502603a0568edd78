"""Loads every fixture module of tests/infra as a plugin, so each suite can use them by name."""

from __future__ import annotations

import pkgutil

import tests.infra

pytest_plugins = [
    f"tests.infra.{info.name}"
    for info in pkgutil.iter_modules(tests.infra.__path__)
    if not info.name.startswith("_")
]

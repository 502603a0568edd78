"""Loads every fixture module of tests/infra as a plugin, so each suite can use them by name."""

from __future__ import annotations

import pkgutil
from pathlib import Path

import pytest

# Fixture modules import each other: mark them all for assertion rewriting before any loads.
pytest.register_assert_rewrite("tests.infra")

pytest_plugins = [
    f"tests.infra.{info.name}"
    for info in pkgutil.iter_modules([str(Path(__file__).parent / "infra")])
    if not info.name.startswith("_")
]

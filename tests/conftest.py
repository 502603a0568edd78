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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the longest tests (tests/e2e: minutes each) first, keeping the random order within
    each tier: parallel workers then finish together instead of waiting on one that drew an
    e2e test last. A stable sort on top of pytest-randomly's shuffle, so a seed still replays."""
    e2e = Path(__file__).parent / "e2e"
    items.sort(key=lambda item: 0 if e2e in Path(str(item.path)).parents else 1)

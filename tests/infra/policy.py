"""What to do when a piece of test infrastructure is missing: skip locally, fail in CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(what: str, how_to_install: str) -> NoReturn:
    """Skip the test (outside CI) or fail it (CI=true), saying how to get `what`."""
    message = f"{what} is not available: {how_to_install}"
    if in_ci():
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)

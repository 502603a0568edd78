"""A missing piece of infrastructure skips with an install hint locally and fails with CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]

INNER_TEST = """
import tests.infra.postgres as pg

pg.find_bindir = lambda: None  # as on a machine without the postgresql package


def test_needs_postgres(postgres):
    raise AssertionError("must not run without PostgreSQL")
"""


@pytest.mark.parametrize(("ci", "outcome"), [("", "SKIPPED"), ("true", "ERROR")])
def test_missing_postgres(tmp_path: Path, ci: str, outcome: str) -> None:
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "pytest", "-p", "tests.infra.postgres", "-rsE", "-q"]
    argv += ["-p", "no:cacheprovider", "-c", os.devnull, "--rootdir", str(tmp_path)]
    done = subprocess.run(
        [*argv, str(tmp_path / "test_inner.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert outcome in done.stdout, done.stdout + done.stderr
    assert "PostgreSQL (initdb) is not available" in done.stdout
    assert "scripts/install-test-deps.sh" in done.stdout
    assert ("CI=true and" in done.stdout) == (ci == "true")
    assert done.returncode == (1 if ci else 0)

"""`wrctl build`: a guest with a syntax error fails with file:line (runs componentize-py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from wrctl.cli import app

pytestmark = pytest.mark.slow


def test_syntax_error_is_reported_with_file_and_line(tmp_path: Path) -> None:
    guest = tmp_path / "broken"
    guest.mkdir()
    (guest / "app.py").write_text("from wr_sdk import Module\napp = Module()\n\ndef f(:\n  pass\n")
    result = CliRunner().invoke(app, ["build", str(guest), "-o", str(tmp_path / "out.wasm")])
    assert result.exit_code == 1
    assert f"{guest / 'app.py'}:4: SyntaxError: invalid syntax" in " ".join(result.output.split())
    assert not (tmp_path / "out.wasm").exists()


def test_missing_guest_dir_and_bad_capability(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["build", str(tmp_path / "nope")])
    assert result.exit_code == 1
    assert "guest directory not found" in result.output
    result = runner.invoke(app, ["build", str(tmp_path), "--capability", "gpu"])
    assert result.exit_code == 1  # a usage error: 2 means "changes present" (plan)
    assert "unknown capability 'gpu'" in result.output

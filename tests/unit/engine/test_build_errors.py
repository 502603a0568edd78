"""wrctl build's error reporting, without running componentize-py."""

from __future__ import annotations

from pathlib import Path

import pytest

from wrctl.build.componentize import guest_error
from wrctl.build.spec import BuildError, load_spec

COMPONENTIZE_OUTPUT = """Traceback (most recent call last):
  File "/venv/bin/componentize-py", line 10, in <module>
AssertionError: Traceback (most recent call last):
  File "/0/wr_entry.py", line 1, in <module>
    import app
  File "/1/app.py", line 4
    def f(:
          ^
SyntaxError: invalid syntax


Caused by:
    SyntaxError: invalid syntax (app.py, line 4)
"""


def test_syntax_error_points_at_the_guest_file() -> None:
    paths = [Path("/stage/entry"), Path("/src/guest")]
    assert (
        guest_error(COMPONENTIZE_OUTPUT, paths)
        == "/src/guest/app.py:4: SyntaxError: invalid syntax"
    )


def test_spec_errors(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="guest directory not found"):
        load_spec(tmp_path / "missing")
    with pytest.raises(BuildError, match=r"app\.py: entry module not found"):
        load_spec(tmp_path)
    (tmp_path / "app.py").write_text("")
    (tmp_path / "guest.toml").write_text('protos = ["x.proto"]\n')
    assert load_spec(tmp_path).protos == [(tmp_path / "x.proto").resolve()]

"""The wruntime wheel a bundle ships is built reproducibly from the checkout: two builds give
the same bytes, and it carries the console scripts and the templates install needs."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from wrctl.bundle.runtime_wheel import _build_from_source, source_tree

pytestmark = pytest.mark.slow


def test_two_builds_of_the_runtime_wheel_are_identical(tmp_path: Path) -> None:
    root = source_tree()
    assert root is not None
    built = []
    for name in ("one", "two"):
        out = tmp_path / name
        out.mkdir()
        _build_from_source(root, out)
        [wheel] = out.glob("*.whl")
        built.append(wheel)
    assert built[0].name == built[1].name
    assert built[0].read_bytes() == built[1].read_bytes()
    with zipfile.ZipFile(built[0]) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        scripts = zf.read(entry_points).decode()
    assert "wrctl/_templates/install.sh.j2" in names
    assert "wrctl/bundle/hostverify.py" in names and "runtime/api/wruntime_pb2.py" in names
    for script in ("wrctl", "wr-manager", "wr-proxy", "wr-engine"):
        assert f"{script} = " in scripts

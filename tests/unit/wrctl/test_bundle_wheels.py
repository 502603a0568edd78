"""Which wheels a bundle asks pip for: platform tags, their compatible older tags, and the
runtime's dependency closure taken from this environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from wrctl.bundle.runtime_wheel import source_digest, source_tree
from wrctl.bundle.wheels import Pin, Target, compatible_platforms, dependency_closure
from wrctl.errors import WrctlError


def test_manylinux_tags_expand_down_to_the_oldest() -> None:
    tags = compatible_platforms("manylinux_2_28_x86_64")
    assert tags[:2] == ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64"]
    assert tags.index("manylinux2014_x86_64") == tags.index("manylinux_2_17_x86_64") + 1
    assert tags[-2:] == ["manylinux_2_5_x86_64", "manylinux1_x86_64"]
    assert compatible_platforms("manylinux2014_aarch64")[0] == "manylinux_2_17_aarch64"
    assert compatible_platforms("musllinux_1_2_x86_64") == ["musllinux_1_2_x86_64"]


@pytest.mark.parametrize(
    ("platform", "python", "message"),
    [
        ("win_amd64", "3.11", "--platform: 'win_amd64' is not a Linux wheel platform tag"),
        ("manylinux_2_17_x86_64", "311", "--python: '311' is not a Python version"),
    ],
)
def test_bad_targets_are_named(platform: str, python: str, message: str) -> None:
    with pytest.raises(WrctlError, match=message):
        Target(platform, python)


def test_the_closure_is_the_runtime_dependencies_at_their_installed_versions() -> None:
    import importlib.metadata as md

    pins = dependency_closure(Target("manylinux_2_17_x86_64", "3.11"))
    names = {p.name for p in pins}
    assert {
        "grpcio",
        "wasmtime",
        "pydantic",
        "pydantic-core",
        "supervisor",
        "cryptography",
    } <= names
    assert not names & {"pytest", "mypy", "ruff", "moto", "wruntime"}  # no dev extra, no root
    assert Pin("grpcio", md.version("grpcio")) in pins
    assert pins == sorted(pins)


def test_the_source_digest_follows_the_sources(tmp_path: Path) -> None:
    assert source_tree() is not None  # the test venv has wruntime editable from the checkout
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "wrctl").mkdir()
    (tmp_path / "wrctl" / "a.py").write_text("x = 1\n")
    first = source_digest(tmp_path)
    (tmp_path / "wrctl" / "__pycache__").mkdir()
    (tmp_path / "wrctl" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"junk")
    (tmp_path / "notes.txt").write_text("not a wheel input")
    assert source_digest(tmp_path) == first
    (tmp_path / "wrctl" / "a.py").write_text("x = 2\n")
    assert source_digest(tmp_path) != first

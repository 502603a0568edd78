"""The command line itself: what starting it imports, and its exit codes (Terraform's: 0 ok,
1 any error, usage errors included, 2 only for changes under --detailed-exitcode)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from wrctl.cli import app

HEAVY = ("grpc", "google.protobuf", "wasmtime", "paramiko", "fabric", "rich.progress", "pydantic")
_PROBE = """
import json, sys
from wrctl.cli import main
sys.argv = ["wrctl", *sys.argv[1:]]
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)), file=sys.stderr)
"""


def _imported(*args: str) -> set[str]:
    """Modules loaded by one fresh `wrctl ARGS` (in its own interpreter)."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=60
    )
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


@pytest.mark.parametrize("args", [("version",), ("--help",), ("plan", "--help")])
def test_starting_imports_only_what_the_command_needs(args: tuple[str, ...]) -> None:
    loaded = _imported(*args)
    assert "typer" in loaded  # the probe saw the CLI run
    heavy = sorted(m for m in loaded if m in HEAVY or m.split(".")[0] in HEAVY)
    assert heavy == [], f"wrctl {' '.join(args)} imported {heavy}"


def _cluster(tmp_path: Path, text: str = "") -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(text or '[cluster]\nname = "c"\n[[node]]\nname = "a"\nhost = "local"\n')
    return path


def test_usage_errors_exit_1_not_2() -> None:
    runner = CliRunner()
    for args in (["plan", "--bogus"], ["no-such-command"], ["apply", "--parallel", "0"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)


def test_a_bad_cluster_file_exits_1_naming_its_place(tmp_path: Path) -> None:
    path = _cluster(tmp_path, '[cluster]\nnmae = "c"\n')
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2:1: cluster.nmae: unknown key; did you mean 'name'?" in result.output


def test_validate_ok_exits_0(tmp_path: Path) -> None:
    path = _cluster(tmp_path)
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path} is valid: cluster c, 1 node(s), 0 module(s)" in result.output

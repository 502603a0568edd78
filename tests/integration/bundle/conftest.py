"""Real bundles for the bundle tests: the echo example's cluster on free ports, the wheels for
this machine (downloaded once into the wruntime cache), and unpacking as a deploy does."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra.process import cache_dir, free_port
from wrctl.bundle.build import Bundle
from wrctl.bundle.wheels import default_target
from wrctl.bundle.wheelset import WheelSet, collect_wheels

REPO = Path(__file__).resolve().parents[3]
ECHO_PROTO = REPO / "examples" / "echo" / "schemas" / "echo.proto"
# The interpreter a clean host has; venvs made from it are usable by any user.
HOST_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or "python3"


@pytest.fixture(scope="session")
def bundle_wheels() -> WheelSet:
    """The runtime wheel and its dependencies for this machine (cached by content)."""
    return collect_wheels(default_target(), cache_dir())


@dataclass
class EchoCluster:
    file: Path
    ports: dict[str, int]


def write_echo_cluster(root: Path, echo_wasm: Path, extra: str = "") -> EchoCluster:
    """cluster.toml: a local manager (sqlite) and node `a` serving example.echo."""
    ports = {name: free_port() for name in ("m", "ma", "d", "c", "a", "p", "e")}
    text = f"""\
[cluster]
name = "bt"

[manager]
host = "local"
port = {ports["m"]}
admin_port = {ports["ma"]}
{extra}
[defaults]
format = "supervisor"

[[node]]
name = "a"
host = "local"
data_port = {ports["d"]}
control_port = {ports["c"]}
admin_port = {ports["a"]}
peer_port = {ports["p"]}
engine_port = {ports["e"]}

[[module]]
namespace = "example"
name = "echo"
version = "1.0.0"
component = "{echo_wasm}"
schema = "{ECHO_PROTO}"
capabilities = ["tracing"]
"""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cluster.toml").write_text(text)
    return EchoCluster(root / "cluster.toml", ports)


def unpack_release(bundle: Bundle, workdir: Path) -> Path:
    """Unpack into WORKDIR/TARGET/releases/<hex>/ and point `current` at it, like a deploy."""
    hexdigest = bundle.digest.removeprefix("sha256:")
    release = workdir / bundle.target / "releases" / hexdigest
    release.mkdir(parents=True)
    with tarfile.open(bundle.path, "r:gz") as tar:
        tar.extractall(release, filter="data")
    (workdir / bundle.target / "current").symlink_to(f"releases/{hexdigest}")
    return release


def run_install(
    release: Path,
    workdir: Path,
    fmt: str = "supervisor",
    env: dict[str, str] | None = None,
    offline: bool = False,
) -> subprocess.CompletedProcess[str]:
    """`sh install.sh WORKDIR TARGET FORMAT`; offline: in a new network namespace with no
    interfaces up, so nothing can reach an index even if pip tried."""
    target = release.parent.parent.name
    argv = ["sh", str(release / "install.sh"), str(workdir), target, fmt]
    if offline:
        argv = ["unshare", "--net", *argv]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "WR_PYTHON": HOST_PYTHON, **(env or {})},
    )

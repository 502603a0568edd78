"""install.sh on its own: placeholders resolved or named, the state password taken from the
host (never the bundle), and refusals of a wrong target or format."""

from __future__ import annotations

import re
import stat
from pathlib import Path

from runtime.version import __version__
from runtime.wire import COMPONENT_HEADER
from tests.integration.bundle.conftest import run_install, unpack_release, write_echo_cluster
from wrctl.bundle.build import Bundle, build_bundles
from wrctl.config import load_targets

RUNTIME = {"WR_RUNTIME_BIN": "/usr/local/wr/bin"}


def _bundles(tmp_path: Path, extra: str = "") -> list[Bundle]:
    echo = tmp_path / "echo.wasm"
    echo.write_bytes(COMPONENT_HEADER + b"echo")
    cluster = write_echo_cluster(tmp_path / "src", echo, extra)
    return build_bundles(load_targets(cluster.file), tmp_path / "out", __version__)


def test_placeholders_are_resolved_everywhere(tmp_path: Path) -> None:
    workdir = tmp_path / "wr"
    release = unpack_release(_bundles(tmp_path)[1], workdir)
    done = run_install(release, workdir, env=RUNTIME)
    assert done.returncode == 0, done.stderr
    rendered = [p for p in (release / "etc").rglob("*") if p.is_file()]
    assert {p.relative_to(release / "etc").as_posix() for p in rendered} >= {
        "proxy.toml",
        "engine-0.toml",
        "supervisor/programs.conf",
        "systemd/wr-a-proxy.service",
        "docker/compose.yaml",
    }
    for path in [*rendered, workdir / "supervisord.conf"]:
        assert not re.search(r"@[A-Z_]+@", path.read_text()), path
    programs = (release / "etc/supervisor/programs.conf").read_text()
    assert f"command=/usr/local/wr/bin/wr-proxy --config {workdir}/node-a/current/etc" in programs


def test_an_unresolved_placeholder_is_named_with_its_file(tmp_path: Path) -> None:
    workdir = tmp_path / "wr"
    release = unpack_release(_bundles(tmp_path)[1], workdir)
    proxy = release / "config" / "proxy.toml"
    proxy.write_text(proxy.read_text() + 'note = "@REGION@"\n')
    done = run_install(release, workdir, env=RUNTIME)
    assert done.returncode == 3
    assert done.stderr.strip() == "install.sh: unresolved placeholder @REGION@ in config/proxy.toml"
    assert not (release / "etc" / "proxy.toml").exists()


def test_the_state_password_comes_from_the_host(tmp_path: Path) -> None:
    extra = 'state = "postgresql://wr:x@db.internal/wr"\n'
    workdir = tmp_path / "wr"
    release = unpack_release(_bundles(tmp_path, extra)[0], workdir)
    missing = run_install(release, workdir, env=RUNTIME)
    assert missing.returncode == 5
    assert "the password of [manager] state's PostgreSQL DSN is not on this host" in (
        missing.stderr
    )
    assert f"put it in {workdir}/manager/data/pgpass" in missing.stderr
    done = run_install(release, workdir, env={**RUNTIME, "WR_STATE_PASSWORD": "p:a\\ss w"})
    assert done.returncode == 0, done.stderr
    pgpass = workdir / "manager" / "data" / "pgpass"
    assert pgpass.read_text() == "*:*:*:*:p\\:a\\\\ss w\n"
    assert stat.S_IMODE(pgpass.stat().st_mode) == 0o600
    again = run_install(release, workdir, env=RUNTIME)  # the file stays; no env needed now
    assert again.returncode == 0, again.stderr
    key = workdir / "manager" / "data" / "secrets.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text().strip()) == 44
    env_file = (workdir / "manager" / "data" / "secrets.env").read_text()
    assert env_file == f"WR_SECRETS_KEY={key.read_text().strip()}\n"


def test_wrong_target_format_or_arguments_are_refused(tmp_path: Path) -> None:
    workdir = tmp_path / "wr"
    release = unpack_release(_bundles(tmp_path)[1], workdir)
    other = workdir / "node-b" / "releases"
    other.mkdir(parents=True)
    moved = other / release.name
    release.rename(moved)
    wrong = run_install(moved, workdir, env=RUNTIME)
    assert wrong.returncode == 2
    assert "this bundle is for target node-a, not 'node-b'" in wrong.stderr
    moved.rename(release)
    bad = run_install(release, workdir, "kubernetes", env=RUNTIME)
    assert bad.returncode == 2
    assert "unknown format 'kubernetes' (expected supervisor, systemd or docker)" in bad.stderr
    no_wheels = run_install(release, workdir)
    assert no_wheels.returncode == 2
    assert "no wheels/ in this bundle and WR_RUNTIME_BIN is not set" in no_wheels.stderr


def test_a_hostile_workdir_runs_nothing(tmp_path: Path) -> None:
    """Issue 17: `#` in WORKDIR ended install.sh's sed expression and its `e` flag ran every
    line as a command (as root under systemd). Such a path is refused before any is written."""
    marker = tmp_path / "pwned"
    release = unpack_release(_bundles(tmp_path)[1], tmp_path / "wr")
    hostile = tmp_path / f"wr$(touch {marker})#e;#"
    done = run_install(release, hostile, env=RUNTIME)
    assert done.returncode == 2, done.stderr
    assert f"install.sh: WORKDIR '{hostile}' may only contain A-Za-z0-9._/+-" in done.stderr
    assert not marker.exists() and not hostile.exists()


def test_a_hostile_runtime_bin_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    workdir = tmp_path / "wr"
    release = unpack_release(_bundles(tmp_path)[1], workdir)
    hostile = {"WR_RUNTIME_BIN": f"/usr/bin$(touch {marker})#e;#"}
    done = run_install(release, workdir, env=hostile)
    assert done.returncode == 2 and "install.sh: WR_RUNTIME_BIN" in done.stderr
    assert not marker.exists()

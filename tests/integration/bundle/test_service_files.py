"""The service files a bundle installs: systemd units pass `systemd-analyze verify` in a fake
root holding the installed layout, and supervisord loads the supervisor config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from runtime.version import __version__
from runtime.wire import COMPONENT_HEADER
from tests.infra import policy
from tests.integration.bundle.conftest import run_install, unpack_release, write_echo_cluster
from wrctl.bundle.build import build_bundles
from wrctl.config import load_targets

BINARIES = ("wr-manager", "wr-proxy", "wr-engine", "python")


def _installed(tmp_path: Path, echo_wasm: Path) -> Path:
    """Manager + node bundles (no wheels) installed as on a host; the venv is a stand-in
    with the console scripts, so install.sh renders every file with BIN under `current`."""
    cluster = write_echo_cluster(tmp_path / "src", echo_wasm)
    workdir = tmp_path / "wr"
    for bundle in build_bundles(load_targets(cluster.file), tmp_path / "out", __version__):
        release = unpack_release(bundle, workdir)
        (release / "venv" / "bin").mkdir(parents=True)
        for name in BINARIES:
            exe = release / "venv" / "bin" / name
            exe.write_text("#!/bin/sh\n")
            exe.chmod(0o755)
        (release / "venv" / ".wr-installed").touch()
        done = run_install(release, workdir)
        assert done.returncode == 0, done.stderr
    return workdir


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        policy.unavailable("systemd-analyze", "apt-get install systemd")
    echo = tmp_path / "echo.wasm"
    echo.write_bytes(COMPONENT_HEADER + b"echo")
    workdir = _installed(tmp_path, echo)
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    # the installed layout at the same absolute path inside the fake root
    shutil.copytree(workdir, root / workdir.relative_to("/"), symlinks=True)
    units = root / "etc/systemd/system"
    units.mkdir(parents=True)
    for target in ("manager", "node-a"):
        for unit in (workdir / target / "current" / "etc" / "systemd").iterdir():
            shutil.copy(unit, units / unit.name)
    names = sorted(p.name for p in units.iterdir())
    assert names == [
        "wr-a-engine-0.service",
        "wr-a-proxy.service",
        "wr-manager.service",
        "wr-manager.target",
        "wr-node-a.target",
    ]
    done = subprocess.run(
        [analyze, f"--root={root}", "verify", *(str(units / n) for n in names)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # unknown keys are only warnings with exit 0: any output is a failure
    assert done.returncode == 0 and not done.stderr.strip() and not done.stdout.strip(), (
        done.stdout + done.stderr
    )
    proxy = (units / "wr-a-proxy.service").read_text()
    for line in (
        "User=wruntime",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "PartOf=wr-node-a.target",
        f"ExecStart={workdir}/node-a/current/venv/bin/wr-proxy --config "
        f"{workdir}/node-a/current/etc/proxy.toml",
    ):
        assert line in proxy.splitlines(), line
    manager = (units / "wr-manager.service").read_text()
    assert f"EnvironmentFile={workdir}/manager/data/secrets.env" in manager
    assert "Wants=wr-a-proxy.service wr-a-engine-0.service" in (
        (units / "wr-node-a.target").read_text()
    )


def test_supervisord_loads_the_installed_config(tmp_path: Path) -> None:
    from supervisor.options import ServerOptions

    echo = tmp_path / "echo.wasm"
    echo.write_bytes(COMPONENT_HEADER + b"echo")
    workdir = _installed(tmp_path, echo)
    options = ServerOptions()
    options.realize(args=["-c", str(workdir / "supervisord.conf")])
    programs = {
        group.name: sorted(p.name for p in group.process_configs)
        for group in options.process_group_configs
    }
    assert programs == {
        "wr-manager": ["wr-manager"],
        "wr-node-a": ["wr-a-engine-0", "wr-a-proxy"],
    }
    [manager] = options.process_group_configs[0].process_configs
    assert f"cat {workdir}/manager/data/secrets.key" in manager.command
    assert manager.directory == f"{workdir}/manager/current"


def test_compose_file_is_valid_for_docker_compose(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        policy.unavailable("docker-compose", "bash scripts/install-docker-deps.sh")
    echo = tmp_path / "echo.wasm"
    echo.write_bytes(COMPONENT_HEADER + b"echo")
    cluster = write_echo_cluster(tmp_path / "src", echo)
    workdir = tmp_path / "wr"
    [_, node] = build_bundles(load_targets(cluster.file), tmp_path / "out", __version__)
    release = unpack_release(node, workdir)
    done = run_install(release, workdir, "docker")
    assert done.returncode == 0, done.stderr
    checked = subprocess.run(
        [compose, "-f", str(release / "etc/docker/compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    image = f"wruntime-bt-node-a:{release.name[:12]}"
    assert f"image: {image}" in checked.stdout
    assert "network_mode: host" in checked.stdout and "wr-a-engine-0:" in checked.stdout

"""A local Docker base image with Python 3.11 (no registry is reachable): a debootstrap
rootfs, cached as a tarball by its inputs under the wruntime cache, imported once per run."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra import policy
from tests.infra.docker_daemon import INSTALL_HINT, DockerDaemon

SUITE = "bookworm"
VARIANT = "minbase"
PACKAGES = ("python3", "python3-venv")
RECIPE_VERSION = 1  # bump when the rootfs recipe below changes
IMAGE_REPO = "wruntime-test-base"
DEBOOTSTRAP_TIMEOUT_S = 600
IMAGE_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["/bin/bash"]',
)
# Left out of the image: package caches and lists, and what only a booted machine needs.
PRUNED = ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "var/log/*.log")
SOURCES = (Path("/etc/apt/sources.list.d"), Path("/etc/apt/sources.list"))


def debian_mirror() -> str:
    """$WRTEST_DEBIAN_MIRROR, else the Debian mirror apt already uses for SUITE."""
    forced = os.environ.get("WRTEST_DEBIAN_MIRROR")
    if forced:
        return forced
    files = [p for src in SOURCES for p in ([src] if src.is_file() else sorted(src.glob("*")))]
    for path in files:
        text = path.read_text(errors="replace") if path.is_file() else ""
        # deb822 stanzas ("URIs:" + "Suites:") and one-line "deb URI SUITE ..." entries.
        for stanza in re.split(r"\n\s*\n", text):
            uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
            if uris and suites and SUITE in suites.group(1).split():
                return uris.group(1).rstrip("/")
        for match in re.finditer(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", text, re.M):
            if match.group(2) == SUITE:
                return match.group(1).rstrip("/")
    raise RuntimeError(
        f"no Debian mirror for {SUITE!r} in {', '.join(map(str, SOURCES))}:"
        " set WRTEST_DEBIAN_MIRROR=http://.../debian"
    )


def image_key(mirror: str) -> str:
    """The cache key: everything that decides what the rootfs holds."""
    inputs = {
        "suite": SUITE,
        "variant": VARIANT,
        "packages": sorted(PACKAGES),
        "mirror": mirror,
        "arch": os.uname().machine,
        "recipe": RECIPE_VERSION,
        "changes": IMAGE_CHANGES,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise builders of one cache entry (several test runs may share the cache)."""
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def rootfs_tarball(cache: Path, mirror: str) -> Path:
    """The cached rootfs tarball for these inputs, built (about a minute) if missing."""
    entry_dir = cache / "docker-base"
    entry_dir.mkdir(parents=True, exist_ok=True)
    tarball = entry_dir / f"{image_key(mirror)}.tar"
    with _locked(entry_dir / f"{tarball.name}.lock"):
        if not tarball.exists():
            _build_rootfs_tarball(tarball, mirror)
    return tarball


def _build_rootfs_tarball(tarball: Path, mirror: str) -> None:
    if shutil.which("debootstrap") is None:
        policy.unavailable("`debootstrap`", INSTALL_HINT)
    build = Path(tempfile.mkdtemp(prefix=".build-", dir=tarball.parent))
    try:
        rootfs = build / "rootfs"
        # In a private mount namespace: whatever debootstrap mounts in the rootfs (proc,
        # sys) is gone when it exits, even if it fails half-way, so rmtree never meets it.
        debootstrap = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "debootstrap",
            f"--variant={VARIANT}",
            f"--include={','.join(PACKAGES)}",
            SUITE,
            str(rootfs),
            mirror,
        ]
        done = subprocess.run(
            debootstrap, capture_output=True, text=True, timeout=DEBOOTSTRAP_TIMEOUT_S
        )
        if done.returncode != 0:
            log = rootfs / "debootstrap" / "debootstrap.log"
            detail = log.read_text(errors="replace")[-3000:] if log.exists() else done.stderr
            raise RuntimeError(f"debootstrap {SUITE} from {mirror} failed:\n{detail}")
        for pattern in PRUNED:
            for path in rootfs.glob(pattern):
                if not path.is_dir():  # apt's lists/partial and the like stay
                    path.unlink()
        staged = build / "rootfs.tar"
        tar = ["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(staged), "."]
        subprocess.run(tar, check=True, capture_output=True, timeout=300)
        staged.replace(tarball)  # atomic: a reader never sees half a tarball
    finally:
        shutil.rmtree(build, ignore_errors=True)


def import_base_image(daemon: DockerDaemon, tarball: Path, name: str) -> str:
    """`docker import` the rootfs as name (unless the daemon has it already); return name."""
    if daemon.docker("image", "inspect", name, check=False).returncode != 0:
        changes = [arg for change in IMAGE_CHANGES for arg in ("--change", change)]
        daemon.docker("import", *changes, str(tarball), name)
    return name


@pytest.fixture(scope="session")
def docker_base_image(docker_daemon: DockerDaemon, wruntime_cache: Path) -> str:
    """Name (`wruntime-test-base:<key>`) of a Debian bookworm image with Python 3.11 and
    venv in the session's docker_daemon; set it as the base image in cluster.toml."""
    mirror = debian_mirror()
    tarball = rootfs_tarball(wruntime_cache, mirror)
    return import_base_image(docker_daemon, tarball, f"{IMAGE_REPO}:{image_key(mirror)}")

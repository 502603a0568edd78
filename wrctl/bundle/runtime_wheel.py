"""The wruntime wheel itself, reproducibly: built from the source checkout wrctl runs from
(hatchling, fixed timestamps) and cached by a hash of its inputs, or repacked from an
installed (non-editable) distribution."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import importlib.metadata as md
import json
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path
from urllib.parse import unquote, urlsplit

from wrctl.bundle.wheels import ROOT_DISTRIBUTION
from wrctl.errors import WrctlError

# What the wheel is made of (pyproject's packages, the build hook and what it ships).
SOURCE_INPUTS = (
    "pyproject.toml",
    "README.md",
    "scripts/hatch_build.py",
    "scripts/protogen.py",
    "proto",
    "templates",
    "wit",
    "wrctl",
    "runtime",
    "sdk/wr_sdk",
)
_SKIPPED_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache"}
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def source_tree(dist: str = ROOT_DISTRIBUTION) -> Path | None:
    """The checkout an editable/directory install of `dist` points at, if any."""
    raw = md.distribution(dist).read_text("direct_url.json")
    if not raw:
        return None
    url = json.loads(raw).get("url", "")
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    path = Path(unquote(parts.path))
    return path if (path / "pyproject.toml").is_file() else None


def source_digest(root: Path) -> str:
    """sha256 over the relative path and content of every wheel input under root."""
    digest = hashlib.sha256()
    for rel in SOURCE_INPUTS:
        base = root / rel
        files = [base] if base.is_file() else sorted(p for p in base.rglob("*") if p.is_file())
        for path in files:
            if _SKIPPED_PARTS & set(path.parts) or path.suffix == ".pyc":
                continue
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def runtime_wheel(cache: Path) -> Path:
    """The wruntime wheel for this wrctl, built once per content under cache/wheels/runtime/."""
    root = source_tree()
    if root is None:
        key = f"installed-{md.version(ROOT_DISTRIBUTION)}-{_record_digest()}"
    else:
        key = source_digest(root)[:24]
    entry = cache / "wheels" / "runtime" / key
    found = sorted(entry.glob("*.whl")) if entry.is_dir() else []
    if found:
        return found[0]
    entry.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=entry.parent, prefix=".build-") as tmp:
        out = Path(tmp) / "wheel"
        out.mkdir()
        if root is None:
            _repack_installed(out)
        else:
            _build_from_source(root, out)
        # another build may have got there first: same content by construction
        with contextlib.suppress(OSError):
            out.rename(entry)
    return sorted(entry.glob("*.whl"))[0]


def _build_from_source(root: Path, out: Path) -> None:
    uv = shutil.which("uv")
    if uv is not None:
        argv = [uv, "build", "--wheel", "--quiet", "--out-dir", str(out), str(root)]
    else:  # pip fetches the build backend (hatchling) into an isolated env
        from wrctl.bundle.wheels import pip_command

        argv = [*pip_command(), "wheel", "--quiet", "--no-deps", "-w", str(out), str(root)]
    done = subprocess.run(argv, capture_output=True, text=True, env=_reproducible_env())
    if done.returncode != 0 or not list(out.glob("*.whl")):
        raise WrctlError(
            f"could not build the wruntime wheel from {root}:\n{done.stderr.strip()[-2000:]}"
        )
    for extra in out.iterdir():
        if extra.suffix != ".whl":
            extra.unlink()


def _reproducible_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env["SOURCE_DATE_EPOCH"] = "315532800"  # 1980-01-01, the earliest a zip can hold
    return env


def _record_digest() -> str:
    dist = md.distribution(ROOT_DISTRIBUTION)
    record = dist.read_text("RECORD") or ""
    return hashlib.sha256(record.encode()).hexdigest()[:16]


def _repack_installed(out: Path) -> None:
    """Write the installed distribution's files back into a wheel (sorted, fixed times)."""
    dist = md.distribution(ROOT_DISTRIBUTION)
    version = md.version(ROOT_DISTRIBUTION)
    dist_info = f"{ROOT_DISTRIBUTION}-{version}.dist-info"
    installer_files = ("RECORD", "INSTALLER", "direct_url.json", "REQUESTED", "uv_cache.json")
    skip = {f"{dist_info}/{n}" for n in installer_files}
    members: dict[str, bytes] = {}
    for file in dist.files or []:
        name = file.as_posix()
        if name.startswith("..") or name in skip or "__pycache__" in name:
            continue  # console scripts are regenerated from entry_points.txt on install
        members[name] = Path(str(file.locate())).read_bytes()
    record = [
        f"{name},sha256={_b64digest(data)},{len(data)}" for name, data in sorted(members.items())
    ]
    members[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
    wheel = out / f"{ROOT_DISTRIBUTION}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(members):
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, members[name])


def _b64digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

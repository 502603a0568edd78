"""Reproducible tar.gz: sorted entries, fixed mtime/owner/mode, gzip header mtime 0.

Building twice from the same inputs gives byte-identical archives, so the archive's sha256
is a stable identity (the bundle digest that plan and apply compare).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Mapping
from pathlib import Path

EPOCH = 0  # 1970-01-01: the same for every build
EXECUTABLE_SUFFIXES = (".sh",)
EXECUTABLE_DIRS = ("bin/",)


def build_tarball(files: Mapping[str, bytes], out: Path | None = None) -> tuple[bytes, str]:
    """Pack {archive path: content} into a deterministic tar.gz; returns (bytes, sha256 hex)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in _directories(files):
            tar.addfile(_info(directory, tarfile.DIRTYPE, 0, 0o755))
        for name in sorted(files):
            data = files[name]
            executable = name.endswith(EXECUTABLE_SUFFIXES) or name.startswith(EXECUTABLE_DIRS)
            mode = 0o755 if executable else 0o644
            tar.addfile(_info(name, tarfile.REGTYPE, len(data), mode), io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6, filename="") as gz:
        gz.write(raw.getvalue())
    data = packed.getvalue()
    if out is not None:
        from wrctl.fsutil import write_atomic

        write_atomic(out, data)
    return data, hashlib.sha256(data).hexdigest()


def _directories(files: Mapping[str, bytes]) -> list[str]:
    dirs: set[str] = set()
    for name in files:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return sorted(dirs)


def _info(name: str, kind: bytes, size: int, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    info.mode = mode
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def read_tarball(path: Path) -> dict[str, bytes]:
    """Every regular file of a tar.gz, refusing absolute paths and `..` (no escape on unpack)."""
    out: dict[str, bytes] = {}
    with tarfile.open(path, mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.name.startswith("/") or ".." in Path(member.name).parts:
                raise ValueError(f"{path}: unsafe path in archive: {member.name}")
            if member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                out[member.name] = extracted.read()
    return out

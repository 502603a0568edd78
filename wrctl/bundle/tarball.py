"""Reproducible tar.gz: sorted entries, fixed mtime/owner/mode, gzip header mtime 0.

Building twice from the same inputs gives byte-identical archives, so the archive's sha256
is a stable identity (the bundle digest that plan and apply compare). Two things keep big
bundles cheap: a file whose content already appears in the archive is stored as a hard link
to the first copy (100 modules built from one component cost one component), and the
`wheels/` part is a gzip member of its own, compressed once per content and reused
(a multi-member gzip is still one .tar.gz to tar, Python and pip).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

EPOCH = 0  # 1970-01-01: the same for every build
EXECUTABLE_SUFFIXES = (".sh",)
EXECUTABLE_DIRS = ("bin/",)
# Dependency wheels: the same in every bundle of a run, and from run to run (the runtime's
# own wheel changes with every source edit, so it stays with the rest).
SHARED_PREFIX = "wheels/"
UNSHARED_PREFIX = "wheels/wruntime-"
KEEP_PACKED = 3  # compressed tails kept in `cache` (older ones are deleted)
LINK_MIN_SIZE = 4096  # smaller duplicates stay plain files (configs, scripts)
_END = b"\0" * (2 * tarfile.BLOCKSIZE)
_packed: dict[str, bytes] = {}  # sha256 of a raw tail -> its gzip member, in this process


def build_tarball(
    files: Mapping[str, bytes],
    out: Path | None = None,
    cache: Path | None = None,
    digests: Mapping[str, str] | None = None,
) -> tuple[bytes, str]:
    """Pack {archive path: content} into a deterministic tar.gz; returns (bytes, sha256 hex).
    `cache` keeps the compressed wheels/ member on disk for later builds; `digests` (path ->
    sha256 hex of its content) saves hashing what the caller hashed already."""
    names = sorted(files)
    digests = digests or {n: hashlib.sha256(files[n]).hexdigest() for n in names}
    head = [_member(d, tarfile.DIRTYPE, b"", 0o755) for d in _directories(files)]
    shared = {n for n in names if n.startswith(SHARED_PREFIX)} - {
        n for n in names if n.startswith(UNSHARED_PREFIX)
    }
    head += _members([n for n in names if n not in shared], files, digests)
    tail_names = sorted(shared)
    # the raw tail is a function of its names and contents (modes follow from names)
    key = hashlib.sha256(
        f"v1\n{[(n, digests[n], len(files[n])) for n in tail_names]}".encode()
    ).hexdigest()
    tail = _members(tail_names, files, digests)
    data = _gzip(b"".join(head)) + _compressed_tail(key, b"".join(tail) + _END, cache)
    if out is not None:
        from wrctl.fsutil import write_atomic

        write_atomic(out, data)
    return data, hashlib.sha256(data).hexdigest()


def _members(
    names: list[str], files: Mapping[str, bytes], digests: Mapping[str, str]
) -> list[bytes]:
    out: list[bytes] = []
    first_of: dict[str, str] = {}
    for name in names:
        data = files[name]
        executable = name.endswith(EXECUTABLE_SUFFIXES) or name.startswith(EXECUTABLE_DIRS)
        mode = 0o755 if executable else 0o644
        digest = digests[name] if len(data) >= LINK_MIN_SIZE else None
        if digest is not None and digest in first_of:
            out.append(_member(name, tarfile.LNKTYPE, b"", mode, link=first_of[digest]))
            continue
        if digest is not None:
            first_of[digest] = name
        out.append(_member(name, tarfile.REGTYPE, data, mode))
    return out


def _member(name: str, kind: bytes, data: bytes, mode: int, link: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = len(data)
    info.mode = mode
    info.mtime = EPOCH
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.linkname = link
    header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    padding = b"\0" * (-len(data) % tarfile.BLOCKSIZE)
    return header + data + padding


def _gzip(raw: bytes) -> bytes:
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0, compresslevel=6, filename="") as gz:
        gz.write(raw)
    return packed.getvalue()


def _compressed_tail(key: str, raw: bytes, cache: Path | None) -> bytes:
    """The gzip member of the archive's tail, reused by content key (memory, then `cache`)."""
    if key in _packed:
        return _packed[key]
    stored = cache / f"{key}.gz" if cache is not None else None
    if stored is not None and stored.is_file():
        member = stored.read_bytes()
    else:
        member = _gzip(raw)
        if stored is not None:
            from wrctl.fsutil import write_atomic

            write_atomic(stored, member)
            packed = sorted(stored.parent.glob("*.gz"), key=lambda p: p.stat().st_mtime)
            for old in packed[:-KEEP_PACKED]:
                old.unlink(missing_ok=True)
    _packed.clear()  # one tail (a run's wheel set) is what repeats; keep memory bounded
    _packed[key] = member
    return member


def _directories(files: Mapping[str, bytes]) -> list[str]:
    dirs: set[str] = set()
    for name in files:
        parts = name.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            dirs.add("/".join(parts[:i]))
    return sorted(dirs)


def read_tarball(path: Path) -> dict[str, bytes]:
    """Every file of a tar.gz (hard links read as their target's content), refusing absolute
    paths, `..`, symlinks and links to anything but an earlier file (no escape on unpack)."""
    out: dict[str, bytes] = {}
    with tarfile.open(path, mode="r:gz") as tar:
        for member in tar:
            if member.name.startswith("/") or ".." in PurePosixPath(member.name).parts:
                raise ValueError(f"{path}: unsafe path in archive: {member.name}")
            if member.islnk() and member.linkname in out:
                out[member.name] = out[member.linkname]
            elif member.issym() or member.islnk():
                raise ValueError(f"{path}: link in archive: {member.name} -> {member.linkname}")
            elif member.isfile():
                extracted = tar.extractfile(member)
                assert extracted is not None
                out[member.name] = extracted.read()
    return out

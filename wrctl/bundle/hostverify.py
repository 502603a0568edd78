"""Verify a bundle (unpacked dir or tar.gz): manifest schema, every file's sha256 and size,
and the manifest's ed25519 signature. Standard library only: it is shipped in every bundle as
bin/wr-verify-bundle and runs on hosts that have nothing but Python 3."""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
FORMAT_VERSION = 1
KINDS = ("manager", "node")
# What install.sh creates inside a release; never part of a bundle, so ignored in a dir.
INSTALLED = ("venv", "etc")


class BundleInvalid(Exception):
    """The first problem found, as one line."""


# ---- ed25519 verification (RFC 8032 section 5.1.7; verification only, no secrets here) ----

_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T)


def _add(a: _Point, b: _Point) -> _Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    a_ = (y1 - x1) * (y2 - x2) % _P
    b_ = (y1 + x1) * (y2 + x2) % _P
    c = 2 * t1 * t2 * _D % _P
    d = 2 * z1 * z2 % _P
    e, f, g, h = b_ - a_, d - c, d + c, b_ + a_
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, point: _Point) -> _Point:
    q: _Point = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, point)
        point = _add(point, point)
        s >>= 1
    return q


def _equal(a: _Point, b: _Point) -> bool:
    return (a[0] * b[2] - b[0] * a[2]) % _P == 0 and (a[1] * b[2] - b[1] * a[2]) % _P == 0


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, _P - 2, _P)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P != 0:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P != 0:
        return None
    if (x & 1) != sign:
        x = _P - x
    return x


def _decompress(raw: bytes) -> _Point | None:
    y = int.from_bytes(raw, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


_G_Y = 4 * pow(5, _P - 2, _P) % _P
_G_X = _recover_x(_G_Y, 0)
assert _G_X is not None
_G: _Point = (_G_X, _G_Y, 1, _G_X * _G_Y % _P)


def ed25519_verify(public: bytes, message: bytes, signature: bytes) -> bool:
    """True when `signature` is a valid ed25519 signature of `message` by `public`."""
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decompress(public)
    r = _decompress(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % _L
    return _equal(_mul(s, _G), _add(r, _mul(h, a)))


# ---- the bundle ----


class _Source:
    """Files of a bundle, from an unpacked directory or straight from its tar.gz."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._tar: dict[str, bytes] | None = None
        if path.is_file():
            self._tar = _read_tar(path)
        elif not path.is_dir():
            raise BundleInvalid(f"{path}: no such bundle file or directory")

    def names(self) -> Iterator[str]:
        if self._tar is not None:
            yield from self._tar
            return
        for file in self.path.rglob("*"):
            rel = file.relative_to(self.path)
            if rel.parts[0] in INSTALLED or file.is_dir():
                continue
            yield rel.as_posix()

    def read(self, name: str) -> bytes | None:
        if self._tar is not None:
            return self._tar.get(name)
        file = self.path / name
        return file.read_bytes() if file.is_file() and not file.is_symlink() else None


def _read_tar(path: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            for member in tar:
                if member.name.startswith("/") or ".." in PurePosixPath(member.name).parts:
                    raise BundleInvalid(f"unsafe path in the archive: {member.name}")
                if member.islnk() and member.linkname in out:  # a duplicate stored once
                    out[member.name] = out[member.linkname]
                elif member.issym() or member.islnk():
                    raise BundleInvalid(f"link in the archive: {member.name}")
                elif member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    out[member.name] = extracted.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleInvalid(f"{path}: not a readable tar.gz ({exc})") from None
    return out


def _expect(cond: bool, problem: str) -> None:
    if not cond:
        raise BundleInvalid(f"manifest schema: {problem}")


def check_manifest_schema(manifest: Any) -> None:
    """Raise BundleInvalid naming the first field that is missing or of the wrong shape."""
    _expect(isinstance(manifest, dict), "the manifest is not a JSON object")
    version = manifest.get("format_version")
    _expect(version == FORMAT_VERSION, f"format_version is {version!r}, expected {FORMAT_VERSION}")
    _expect(manifest.get("kind") in KINDS, f"kind must be one of {', '.join(KINDS)}")
    for key in ("cluster", "target", "runtime_version"):
        _expect(isinstance(manifest.get(key), str), f"{key} must be a string")
    _expect(isinstance(manifest.get("platform"), dict), "platform must be an object")
    for key in ("tag", "python"):
        _expect(isinstance(manifest["platform"].get(key), str), f"platform.{key} must be a string")
    placeholders = manifest.get("placeholders")
    _expect(
        isinstance(placeholders, list) and all(isinstance(p, str) for p in placeholders),
        "placeholders must be a list of strings",
    )
    modules = manifest.get("modules")
    _expect(isinstance(modules, list), "modules must be a list")
    for i, mod in enumerate(modules):
        for key in ("namespace", "name", "version", "sha256"):
            _expect(
                isinstance(mod, dict) and isinstance(mod.get(key), str),
                f"modules[{i}].{key} must be a string",
            )
    files = manifest.get("files")
    _expect(isinstance(files, list) and len(files) > 0, "files must be a non-empty list")
    for i, entry in enumerate(files):
        _expect(isinstance(entry, dict), f"files[{i}] must be an object")
        path = entry.get("path")
        _expect(isinstance(path, str) and path != "", f"files[{i}].path must be a string")
        parts = PurePosixPath(path).parts
        _expect(
            not path.startswith("/") and ".." not in parts, f"files[{i}].path is unsafe: {path}"
        )
        _expect(isinstance(entry.get("sha256"), str), f"files[{i}].sha256 must be a string")
        _expect(isinstance(entry.get("size"), int), f"files[{i}].size must be an integer")


def decode_public_key(text: str) -> bytes:
    """A trusted key as written in cluster.toml: base64 of the 32 raw ed25519 bytes."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise BundleInvalid(f"trusted key {text!r} is not base64 of a 32-byte ed25519 public key")
    return raw


def _check_signature(source: _Source, manifest_bytes: bytes, trusted: list[str]) -> None:
    keys = [decode_public_key(k) for k in trusted]
    sig_text = source.read(SIGNATURE)
    if sig_text is None:
        raise BundleInvalid(
            f"unsigned bundle: {SIGNATURE} is missing and this cluster trusts only signed bundles"
        )
    try:
        signature = base64.b64decode(sig_text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise BundleInvalid(f"{SIGNATURE} is not base64") from None
    if not any(ed25519_verify(key, manifest_bytes, signature) for key in keys):
        raise BundleInvalid(
            f"{SIGNATURE} does not match {MANIFEST} for any trusted key "
            "(the manifest was changed, or it was signed by another key)"
        )


def verify_bundle(path: Path, trusted_keys: list[str] | None = None) -> dict[str, Any]:
    """Check `path` (release dir or tar.gz); return its manifest or raise BundleInvalid."""
    source = _Source(path)
    manifest_bytes = source.read(MANIFEST)
    if manifest_bytes is None:
        raise BundleInvalid(f"{MANIFEST} is missing")
    if trusted_keys:
        _check_signature(source, manifest_bytes, trusted_keys)
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError as exc:
        raise BundleInvalid(f"{MANIFEST} is not valid JSON ({exc})") from None
    check_manifest_schema(manifest)
    listed = {entry["path"]: entry for entry in manifest["files"]}
    for name, entry in sorted(listed.items()):
        data = source.read(name)
        if data is None:
            raise BundleInvalid(f"missing file {name} (listed in the manifest)")
        if len(data) != entry["size"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise BundleInvalid(f"tampered file {name}: its sha256/size differ from the manifest")
    for name in sorted(source.names()):
        if name not in listed and name not in (MANIFEST, SIGNATURE):
            raise BundleInvalid(f"unknown file {name} (not listed in the manifest)")
    return dict(manifest)


def main(argv: list[str] | None = None) -> int:
    default = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(
        prog="wr-verify-bundle", description="Verify a wruntime bundle before installing it."
    )
    parser.add_argument("bundle", nargs="?", type=Path, default=default, help="dir or tar.gz")
    parser.add_argument(
        "--trusted-key",
        action="append",
        default=[],
        help="base64 ed25519 public key; when given, the manifest must be signed by one",
    )
    args = parser.parse_args(argv)
    try:
        manifest = verify_bundle(args.bundle, args.trusted_key)
    except BundleInvalid as exc:
        print(f"wr-verify-bundle: {args.bundle}: {exc}", file=sys.stderr)
        return 1
    signed = " (signature trusted)" if args.trusted_key else ""
    print(f"ok: {manifest['kind']} {manifest['target']}, {len(manifest['files'])} files{signed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

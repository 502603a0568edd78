"""Rules for values cluster.toml and the command line share with the bundler: wheel platform
tags and trusted signing keys. A leaf module, so config never imports the bundle package."""

from __future__ import annotations

import base64
import binascii
import re

PLATFORM_RE = re.compile(
    r"(manylinux_\d+_\d+|manylinux2014|manylinux2010|manylinux1|musllinux_\d+_\d+)_"
    r"(x86_64|aarch64|i686|ppc64le|s390x|armv7l)"
)
PLATFORM_EXPECTED = (
    "expected like manylinux_2_17_x86_64, manylinux2014_aarch64 or musllinux_1_2_x86_64"
)
PYTHON_RE = re.compile(r"3\.\d{1,2}")


def platform_problem(tag: str) -> str | None:
    """Why `tag` is not a Linux wheel platform tag, or None when it is one."""
    if PLATFORM_RE.fullmatch(tag):
        return None
    return f"{tag!r} is not a Linux wheel platform tag ({PLATFORM_EXPECTED})"


def public_key_problem(text: str) -> str | None:
    """Why `text` is not a trusted key (base64 of 32 raw ed25519 bytes), or None.
    The host-side verifier (bundle/hostverify.py, standard library only) checks the same."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) == 32:
        return None
    return f"trusted key {text!r} is not base64 of a 32-byte ed25519 public key"

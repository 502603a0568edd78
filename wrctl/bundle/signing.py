"""Bundle signing keys: make an ed25519 key pair, sign manifest.json, show a public key the
way cluster.toml's `[bundle] trusted_keys` lists it (base64 of the raw 32 bytes)."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wrctl.errors import WrctlError
from wrctl.fsutil import write_atomic


def public_key_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def generate_key(path: Path) -> str:
    """Write a new private key to `path` (PEM, PKCS#8, mode 0600) and its public key to
    `path.pub`; return the public key (base64) for `[bundle] trusted_keys`."""
    if path.exists():
        raise WrctlError(f"{path}: already exists; not overwriting a signing key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    public = public_key_b64(key)
    write_atomic(path.with_name(path.name + ".pub"), (public + "\n").encode())
    return public


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The ed25519 key in `path` (PEM, unencrypted), with an error naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WrctlError(f"--sign: {path}: cannot read the signing key ({exc.strerror})") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise WrctlError(
            f"--sign: {path}: not an unencrypted PEM private key ({exc}); "
            "make one with `wrctl bundle keygen FILE`"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise WrctlError(f"--sign: {path}: expected an ed25519 key, got {type(key).__name__}")
    return key


def sign_manifest(key: Ed25519PrivateKey, manifest: bytes) -> bytes:
    """manifest.sig: base64 of the ed25519 signature of the exact manifest bytes."""
    return base64.b64encode(key.sign(manifest)) + b"\n"

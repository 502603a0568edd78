"""Encryption of secret values at rest: AES-256-GCM, a random nonce per value, (namespace, key)
bound as associated data so a ciphertext cannot be moved to another secret."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from runtime.manager.errors import StartupError

NONCE_BYTES = 12
KEY_BYTES = 32


class SecretDecryptError(Exception):
    """A stored secret does not decrypt with the configured key."""


def _aad(namespace: str, key: str) -> bytes:
    # Names cannot contain NUL, so the encoding is unambiguous.
    return f"{namespace}\x00{key}".encode()


class SecretBox:
    """Encrypts and decrypts secret values with one AES-256-GCM key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"secret key must be {KEY_BYTES} bytes, got {len(key)}")
        self._aead = AESGCM(key)

    @classmethod
    def from_env(cls, variable: str, environ: Mapping[str, str] | None = None) -> SecretBox:
        """Read the base64 key from the environment; any problem is a one-line StartupError."""
        env = os.environ if environ is None else environ
        raw = env.get(variable, "")
        expected = (
            f"expected base64 of {KEY_BYTES} random bytes, e.g. from `openssl rand -base64 32`"
        )
        if not raw.strip():
            raise StartupError(f"{variable} is not set ({expected})")
        try:
            key = base64.b64decode(raw.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise StartupError(f"{variable} is not valid base64 ({expected})") from None
        if len(key) != KEY_BYTES:
            raise StartupError(f"{variable} decodes to {len(key)} bytes ({expected})")
        return cls(key)

    def encrypt(self, namespace: str, key: str, value: str) -> tuple[bytes, bytes]:
        """Return (nonce, ciphertext) for value."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce, self._aead.encrypt(nonce, value.encode(), _aad(namespace, key))

    def decrypt(self, namespace: str, key: str, nonce: bytes, ciphertext: bytes) -> str:
        try:
            plain = self._aead.decrypt(bytes(nonce), bytes(ciphertext), _aad(namespace, key))
        except InvalidTag:
            raise SecretDecryptError(f"secret {namespace}/{key} does not decrypt") from None
        return plain.decode()

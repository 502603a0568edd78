"""AES-GCM secret box: round trip, binding to (namespace, key), key loading errors."""

from __future__ import annotations

import base64

import pytest

from runtime.manager.errors import StartupError
from runtime.manager.secretbox import SecretBox, SecretDecryptError

KEY = base64.b64encode(b"k" * 32).decode()


def test_round_trip_with_fresh_nonce_per_value() -> None:
    box = SecretBox.from_env("K", {"K": KEY})
    nonce1, ct1 = box.encrypt("example", "api-key", "s3cret")
    nonce2, ct2 = box.encrypt("example", "api-key", "s3cret")
    assert nonce1 != nonce2 and ct1 != ct2
    assert b"s3cret" not in ct1
    assert box.decrypt("example", "api-key", nonce1, ct1) == "s3cret"


def test_ciphertext_is_bound_to_its_namespace_and_key() -> None:
    box = SecretBox(b"k" * 32)
    nonce, ct = box.encrypt("example", "api-key", "s3cret")
    with pytest.raises(SecretDecryptError, match="other/api-key"):
        box.decrypt("other", "api-key", nonce, ct)
    with pytest.raises(SecretDecryptError):
        box.decrypt("example", "other-key", nonce, ct)


def test_wrong_key_does_not_decrypt() -> None:
    nonce, ct = SecretBox(b"k" * 32).encrypt("example", "api-key", "s3cret")
    with pytest.raises(SecretDecryptError):
        SecretBox(b"j" * 32).decrypt("example", "api-key", nonce, ct)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "K is not set"),
        ("  ", "K is not set"),
        ("not base64!", "K is not valid base64"),
        (base64.b64encode(b"short").decode(), "K decodes to 5 bytes"),
    ],
)
def test_key_problems_are_one_line_startup_errors(value: str | None, message: str) -> None:
    env = {} if value is None else {"K": value}
    with pytest.raises(StartupError) as err:
        SecretBox.from_env("K", env)
    assert str(err.value).startswith(message)
    assert "32" in str(err.value) and "\n" not in str(err.value)

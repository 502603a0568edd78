"""The blobstore binding's pure parts: what a worker is told, the guest inputs it refuses, and
per-namespace credentials from secrets (the S3 calls are tested against moto in
tests/integration/engine/test_guest_blobstore.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from runtime.engine.cap_blobstore import BlobError, BlobstoreBinding, check_key, guest_path

NODE = {
    "blobstore": {
        "endpoint": "http://127.0.0.1:9",
        "access_key_id": {"secret": "s3-key"},
        "secret_access_key": {"secret": "s3-secret"},
        "max_object_size": 1024,
    },
    "module": [
        {"name": "a", "namespace": "team-x", "allowed_buckets": ["photos"]},
        {"name": "b", "namespace": "team-y"},
    ],
}


def test_settings_carry_each_modules_buckets_and_the_limits() -> None:
    settings = BlobstoreBinding.settings(NODE)
    assert settings["allowed_buckets"] == {"team-x.a": ["photos"], "team-y.b": []}
    binding = BlobstoreBinding(settings)
    assert (binding.max_object, binding.max_list) == (1024, 1000)


@pytest.mark.parametrize("key", ["", "k" * 1025, "a\0b", "\u00e9" * 513])
def test_bad_keys_are_errors(key: str) -> None:
    with pytest.raises(BlobError) as caught:
        check_key(key)
    assert caught.value.kind == "io"


def test_good_keys_pass() -> None:
    for key in ("a", "k" * 1024, "a//b", "dir/", "/lead", "\u00e9" * 512):
        check_key(key)


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/etc/passwd", "/wr-io/../x"])
def test_data_files_must_be_plain_names_in_wr_io(tmp_path: Path, name: str) -> None:
    with pytest.raises(BlobError, match="plain file name"):
        guest_path(tmp_path, name)


def test_wr_io_prefix_is_accepted(tmp_path: Path) -> None:
    assert guest_path(tmp_path, "/wr-io/x.bin") == tmp_path / "x.bin"
    assert guest_path(tmp_path, "x.bin") == tmp_path / "x.bin"


def test_credentials_come_from_the_namespace_secrets() -> None:
    binding = BlobstoreBinding(BlobstoreBinding.settings(NODE))

    async def go() -> None:
        with pytest.raises(BlobError, match="credentials of namespace team-x have not arrived"):
            await binding._client("team-x")
        binding.set_secrets({"team-x": {"s3-key": "id-1", "s3-secret": "pw-1"}})
        first = await binding._client("team-x")
        assert first.credentials == ("id-1", "pw-1")
        assert await binding._client("team-x") is first  # one client per namespace
        with pytest.raises(BlobError, match="team-y"):  # never another namespace's secrets
            await binding._client("team-y")
        binding.set_secrets({"team-x": {"s3-key": "id-2", "s3-secret": "pw-2"}})
        second = await binding._client("team-x")
        assert second is not first and second.credentials == ("id-2", "pw-2")
        assert first.s3 is None  # the old one was closed
        await second.close()

    asyncio.run(go())

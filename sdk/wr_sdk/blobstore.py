"""S3 objects from a module (the `blobstore` capability).

Grant it in cluster.toml (`capabilities = ["blobstore"]` and `allowed_buckets = [...]` on the
module) and build with it (`capabilities = ["blobstore"]` in guest.toml). The node's
`[blobstore]` section says where the store is; a module never sees its credentials.

    from wr_sdk import blobstore

    blobstore.put("reports", "2024/06/daily.csv", b"day,total\\n...")
    data = blobstore.get("reports", "2024/06/daily.csv")         # bytes

    with blobstore.open("reports", "2024/06/big.bin") as f:     # a binary file
        header = f.read(16)

    with blobstore.create("reports", "2024/06/out.bin") as f:   # uploaded on close
        f.write(b"...")

    for meta in blobstore.list("reports", prefix="2024/06/"):
        print(meta.key, meta.size)

    try:
        blobstore.head("reports", "missing")
    except blobstore.NotFound:
        ...

Bodies travel as files in the request's /wr-io directory, so they count against its quota
(twice the module's max_body_mb) while they are there: close what `open` returns when done
(a `with` block does). Objects are at most `[blobstore] max_object_size` (16 MiB unless the
node says otherwise) and a listing at most `max_list_objects` keys (1000): past either the
call raises TooLarge, never a partial answer. A bucket outside the module's allowed_buckets
raises AccessDenied; a missing object NotFound; anything else IoError.
"""

from __future__ import annotations

import builtins
import io
import itertools
import os
import shutil
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

from wr_sdk._host import GuestOnly, _read_file, _remove, _write_file
from wr_sdk._wire import GUEST_IO_DIR

try:
    from componentize_py_types import Err
    from wit_world.imports import store as _store
except ImportError:  # a world without the blobstore capability, or not in a guest at all
    _store = None

_ids = itertools.count()


class BlobError(Exception):
    """A blobstore call that failed; `kind` is the WIT error case ("not-found", ...)."""

    kind = "io"


class NotFound(BlobError):
    """The object (or bucket) does not exist."""

    kind = "not-found"


class AccessDenied(BlobError):
    """The bucket is not in the module's allowed_buckets, or the store refused."""

    kind = "access-denied"


class TooLarge(BlobError):
    """The object or listing is over the node's limit, or /wr-io has no room for it."""

    kind = "too-large"


class IoError(BlobError):
    """Anything else: the store unreachable, a bad key or file name, an S3 error."""

    kind = "io"


_KINDS: dict[str, type[BlobError]] = {
    "NotFound": NotFound,
    "AccessDenied": AccessDenied,
    "TooLarge": TooLarge,
    "Io": IoError,
}


@dataclass(frozen=True)
class ObjectMeta:
    """What `head` and `list` tell about an object."""

    key: str
    size: int  # bytes
    last_modified: int  # seconds since the Unix epoch (UTC)
    etag: str  # as the store gave it, possibly in quotes


def _need_store() -> Any:
    if _store is None:
        raise GuestOnly(
            "wr_sdk.blobstore needs a component built with the blobstore capability "
            '(capabilities = ["blobstore"] in guest.toml)'
        )
    return _store


def _call(func: Any, *args: Any) -> Any:
    """Call a WIT function; its blob-error becomes the matching exception."""
    try:
        return func(*args)
    except Err as exc:
        case = type(exc.value).__name__.rpartition("_")[2]  # BlobError_NotFound -> NotFound
        raise _KINDS.get(case, IoError)(str(exc.value.value)) from None


def _meta(raw: Any) -> ObjectMeta:
    return ObjectMeta(raw.key, raw.size, raw.last_modified, raw.etag)


def _new_name() -> str:
    return f"blob-put-{next(_ids)}.data"


def put(bucket: str, key: str, data: bytes | IO[bytes]) -> None:
    """Store `data` (bytes, or a binary file object read to its end) as bucket/key,
    replacing any object there.

        blobstore.put("images", "cat.png", png_bytes)
        with open("/wr-io/upload.bin", "rb") as f:
            blobstore.put("images", "big.bin", f)
    """
    store = _need_store()
    name = _new_name()
    path = f"{GUEST_IO_DIR}/{name}"
    try:
        if isinstance(data, bytes | bytearray | memoryview):
            _write_file(path, bytes(data))
        else:
            with builtins.open(path, "wb") as out:
                shutil.copyfileobj(data, out, 1 << 20)
        _call(store.put_object, bucket, key, name)
    finally:
        _remove(path)  # its room in /wr-io counts against the request's quota


class BlobWriter(io.BufferedWriter):
    """A file in /wr-io that becomes bucket/key when closed (see `create`). Leaving a
    `with` block by an exception discards it without uploading."""

    def __init__(self, bucket: str, key: str) -> None:
        self._store = _need_store()
        self.bucket, self.key = bucket, key
        self._name = _new_name()
        self._path = f"{GUEST_IO_DIR}/{self._name}"
        super().__init__(io.FileIO(self._path, "wb"))
        self._discard = False

    def close(self) -> None:
        if self.closed:
            return
        try:
            super().close()
            if not self._discard:
                _call(self._store.put_object, self.bucket, self.key, self._name)
        finally:
            _remove(self._path)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._discard = exc is not None
        self.close()


def create(bucket: str, key: str) -> BlobWriter:
    """A binary file to write; closing it (the end of its `with` block) uploads it.

    with blobstore.create("exports", "orders.jsonl") as f:
        for order in orders:
            f.write(json.dumps(order).encode() + b"\\n")
    """
    return BlobWriter(bucket, key)


class BlobReader(io.BufferedReader):
    """A downloaded object: a binary file (read, readinto, iteration, seek); closing it
    removes the file from /wr-io. `size` is its length in bytes."""

    def __init__(self, path: str) -> None:
        super().__init__(io.FileIO(path, "rb"))
        self.path = path
        self.size = os.fstat(self.fileno()).st_size

    def close(self) -> None:
        try:
            super().close()
        finally:
            _remove(self.path)


def open(bucket: str, key: str) -> BlobReader:
    """Download bucket/key and open it for reading; use it in a `with` block.

    with blobstore.open("logs", "2024-06-01.log") as f:
        for line in f:
            ...
    """
    name = _call(_need_store().get_object, bucket, key)
    return BlobReader(f"{GUEST_IO_DIR}/{name}")


def get(bucket: str, key: str) -> bytes:
    """The whole object as bytes.

    config = json.loads(blobstore.get("settings", "app.json"))
    """
    path = f"{GUEST_IO_DIR}/{_call(_need_store().get_object, bucket, key)}"
    try:
        return _read_file(path, os.stat(path).st_size)
    finally:
        _remove(path)


def delete(bucket: str, key: str) -> None:
    """Remove bucket/key; NotFound when there is no such object."""
    _call(_need_store().delete_object, bucket, key)


def head(bucket: str, key: str) -> ObjectMeta:
    """The object's size, last-modified time and etag, without its body."""
    return _meta(_call(_need_store().head_object, bucket, key))


def list(bucket: str, prefix: str | None = None) -> builtins.list[ObjectMeta]:
    """The objects of bucket (under prefix, when given), in key order; TooLarge past the
    node's max_list_objects.

        sizes = {m.key: m.size for m in blobstore.list("images", prefix="thumbs/")}
    """
    return [_meta(m) for m in _call(_need_store().list_objects, bucket, prefix)]

"""Host side of the blobstore capability (`wruntime:blobstore/store`): S3 objects as /wr-io files.

Bodies never cross the component boundary as `list<u8>`: put-object uploads a file the guest
wrote in its request's `/wr-io`, streamed from disk; get-object streams the object into a new
file there and returns its name. The client is aiobotocore (bench/s3_clients.py measured it
against obstore, which cannot hold every S3 key), one per namespace, made on first use on the
worker's host loop with the namespace's credentials (`{ secret = "key" }` values resolve in
the module's namespace).

Checks, before any S3 call: the bucket is in the module's `allowed_buckets` (else
access-denied), the key is 1-1024 bytes of UTF-8 without NUL (else io), the body file is a
plain file named inside /wr-io (no directories, no `..`, never through a link) of at most
`max_object_size` bytes (else too-large). A download stops as soon as it passes
`max_object_size` or the room left in the request's /wr-io quota (too-large, the partial file
removed); a listing past `max_list_objects` keys is too-large, never cut short silently. A
missing object is not-found; anything else is io with the S3 error. The request's deadline
bounds every call: past it the guest traps and the request answers 504 (no partial file left).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import stat
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from wasmtime import WasmtimeError
from wasmtime import _ffi as ffi

from runtime.engine.capabilities import resolve_secret
from runtime.engine.guest_run import GuestRun
from runtime.engine.host_abi import add_direct_func, read_str
from runtime.engine.host_loop import DeadlineExceeded, host_loop
from runtime.engine.scratch import GuestFileError, io_file
from runtime.engine.wit_values import boxed, read_optional_string, set_record, set_string
from runtime.wire import GUEST_IO_DIR, module_host

INTERFACE = "wruntime:blobstore/store@0.1.0"
DEFAULT_MAX_OBJECT = 16 << 20
DEFAULT_MAX_LIST = 1000
MAX_KEY_BYTES = 1024
CHUNK = 256 << 10  # download chunk: what one read from the socket may hold in memory
PAGE = 1000  # S3 returns at most this many keys per ListObjectsV2 call
_META_FIELDS = ("key", "size", "last-modified", "etag")
_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404", "NoSuchBucket"}
_DENIED_CODES = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"}
_names = itertools.count(1)


class BlobError(Exception):
    """One case of the WIT `blob-error`: kind is its name, the text its payload."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class ObjectMeta:
    key: str
    size: int
    last_modified: int  # seconds since the epoch
    etag: str


def _trap(message: str) -> WasmtimeError:
    return WasmtimeError(f"blobstore: {message}")


# ---- values written back to the guest ------------------------------------------------------


def _set_u64(val: Any, n: int) -> None:
    val.kind = ffi.WASMTIME_COMPONENT_U64
    val.of.u64 = n


def _set_meta(val: Any, meta: ObjectMeta) -> None:
    fields = set_record(val, _META_FIELDS)
    set_string(fields[0].val, meta.key)
    _set_u64(fields[1].val, meta.size)
    fields[2].val.kind = ffi.WASMTIME_COMPONENT_S64
    fields[2].val.of.s64 = meta.last_modified
    set_string(fields[3].val, meta.etag)


def _set_metas(val: Any, metas: list[ObjectMeta]) -> None:
    items = ffi.wasmtime_component_vallist_t()
    ffi.wasmtime_component_vallist_new_uninit(items, len(metas))
    for i in range(len(metas)):
        items.data[i].kind = ffi.WASMTIME_COMPONENT_BOOL
        items.data[i].of.boolean = False
    val.kind = ffi.WASMTIME_COMPONENT_LIST
    val.of.list = items  # owned by val from here
    out = val.of.list.data
    for i, meta in enumerate(metas):
        _set_meta(out[i], meta)


def _set_error(val: Any, error: BlobError) -> None:
    val.kind = ffi.WASMTIME_COMPONENT_VARIANT
    val.of.variant.discriminant = ffi.str_to_capi(error.kind)
    val.of.variant.val = boxed(lambda v: set_string(v, str(error)))


def _set_result(out: Any, ok: Callable[[Any], None] | None, error: BlobError | None) -> None:
    """result<T, blob-error>: ok(val) sets T (None: the `_` of result<_, E>)."""
    out.kind = ffi.WASMTIME_COMPONENT_RESULT
    if error is not None:
        out.of.result.is_ok = False
        out.of.result.val = boxed(lambda v: _set_error(v, error))
    else:
        out.of.result.is_ok = True
        out.of.result.val = boxed(ok) if ok is not None else None


# ---- guest inputs ------------------------------------------------------------------------------


def check_key(key: str) -> None:
    size = len(key.encode())
    if not key or size > MAX_KEY_BYTES:
        raise BlobError("io", f"object key of {size} bytes: expected 1-{MAX_KEY_BYTES} bytes")
    if "\0" in key:
        raise BlobError("io", f"object key {key[:80]!r} contains NUL")


def guest_path(io_dir: Path, name: str) -> Path:
    """The host path of a file the guest names as `name` or `/wr-io/name` (a plain file name
    in its /wr-io: no directories, no `..`, no other absolute path)."""
    plain = name.removeprefix(GUEST_IO_DIR + "/")
    try:
        return io_file(io_dir, plain)
    except GuestFileError:
        raise BlobError(
            "io", f"data-file {name!r}: expected a plain file name inside {GUEST_IO_DIR}"
        ) from None


def open_upload(path: Path, limit: int) -> tuple[int, int]:
    """(fd, size) of a guest's file to upload: opened without following a link, a plain
    file of at most limit bytes (too-large before any upload)."""
    shown = f"{GUEST_IO_DIR}/{path.name}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise BlobError("io", f"{shown} does not exist") from None
    except OSError as exc:
        raise BlobError("io", f"{shown} cannot be read: {exc.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise BlobError("io", f"{shown} is not a plain file")
    if info.st_size > limit:
        os.close(fd)
        raise BlobError(
            "too-large",
            f"{shown} holds {info.st_size} bytes, over the limit of {limit} bytes "
            "([blobstore] max_object_size)",
        )
    return fd, info.st_size


# ---- S3 ----------------------------------------------------------------------------------------


def _s3_error(exc: Exception, what: str) -> BlobError:
    """A BlobError for what went wrong talking to S3."""
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error") or {}
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or code
        if code in _NOT_FOUND_CODES:
            return BlobError(
                "not-found", f"{what}: {'no such bucket' if 'Bucket' in code else 'no such object'}"
            )
        if code in _DENIED_CODES:
            return BlobError("access-denied", f"{what}: S3 refused: {code}: {message}")
        return BlobError("io", f"{what}: S3 error {code}: {message}")
    return BlobError("io", f"{what}: {type(exc).__name__}: {exc}")


def _meta(key: str, size: Any, modified: Any, etag: Any) -> ObjectMeta:
    seconds = int(modified.timestamp()) if isinstance(modified, datetime) else 0
    return ObjectMeta(key, int(size or 0), seconds, str(etag or ""))


class NamespaceClient:
    """One aiobotocore S3 client (its connection pool) for one namespace's credentials."""

    def __init__(self, settings: Mapping[str, Any], key_id: str, secret: str) -> None:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        self.credentials = (key_id, secret)
        self._context = get_session().create_client(
            "s3",
            endpoint_url=settings["endpoint"],
            region_name=settings.get("region", "us-east-1"),
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            config=AioConfig(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                max_pool_connections=32,
            ),
        )
        self.s3: Any = None

    async def open(self) -> None:
        self.s3 = await self._context.__aenter__()

    async def close(self) -> None:
        if self.s3 is not None:
            self.s3 = None
            await self._context.__aexit__(None, None, None)


# ---- the binding -----------------------------------------------------------------------------


class BlobstoreBinding:
    """Links `wruntime:blobstore/store` into a worker's Linker."""

    name = "blobstore"

    @staticmethod
    def settings(node_config: Mapping[str, Any]) -> dict[str, Any]:
        """[blobstore] from engine.toml, and each module's allowed_buckets by module key."""
        section = dict(node_config.get("blobstore") or {})
        section["allowed_buckets"] = {
            module_host(m["namespace"], m["name"]): list(m.get("allowed_buckets") or [])
            for m in node_config.get("module") or []
        }
        return section

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self._settings = dict(settings)
        self.max_object = int(settings.get("max_object_size") or DEFAULT_MAX_OBJECT)
        self.max_list = int(settings.get("max_list_objects") or DEFAULT_MAX_LIST)
        self._buckets: dict[str, set[str]] = {
            k: set(v) for k, v in (settings.get("allowed_buckets") or {}).items()
        }
        self._secrets: dict[str, dict[str, str]] = {}
        self._clients: dict[str, NamespaceClient] = {}  # touched on the host loop only
        self._local = threading.local()

    def set_secrets(self, secrets: dict[str, dict[str, str]]) -> None:
        self._secrets = {ns: dict(values) for ns, values in secrets.items()}

    def link(self, root: Any) -> None:
        with root.add_instance(INTERFACE) as li:
            add_direct_func(li, "put-object", self._put)
            add_direct_func(li, "get-object", self._get)
            add_direct_func(li, "delete-object", self._delete)
            add_direct_func(li, "list-objects", self._list)
            add_direct_func(li, "head-object", self._head)

    def begin(self, run: GuestRun) -> None:
        self._local.run = run

    def end(self, run: GuestRun) -> None:
        # Nothing outlives a host call: downloads finish or are removed inside it, and the
        # files the guest left in /wr-io go with the request's slot.
        self._local.run = None

    def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        if not clients:
            return

        async def close_all() -> None:
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.close()

        with contextlib.suppress(Exception):
            host_loop().run(close_all(), 5.0)

    # -- the host functions --------------------------------------------------------------------

    def _run(self) -> GuestRun:
        run: GuestRun | None = getattr(self._local, "run", None)
        if run is None:
            raise _trap("used outside a request")
        return run

    def _call(
        self,
        run: GuestRun,
        bucket: str,
        work: Callable[[Any], Coroutine[Any, Any, Any]],
    ) -> Any:
        """Run work(s3 client) on the host loop within the request's deadline. The bucket
        is checked first: a bucket the module may not use never reaches S3."""
        if bucket not in self._buckets.get(run.spec.key, set()):
            raise BlobError(
                "access-denied",
                f"module {run.spec.key} may not use bucket {bucket!r} (not in its allowed_buckets)",
            )
        namespace = run.spec.namespace

        async def go() -> Any:
            client = await self._client(namespace)
            return await work(client.s3)

        try:
            return host_loop().run_for(run, go())
        except DeadlineExceeded:
            run.stopped = (504, run.deadline_message())
            raise _trap(run.deadline_message()) from None

    async def _client(self, namespace: str) -> NamespaceClient:
        """The namespace's client, made on first use (again when its credentials change)."""
        secrets = self._secrets.get(namespace, {})
        key_id = resolve_secret(self._settings.get("access_key_id"), secrets)
        secret = resolve_secret(self._settings.get("secret_access_key"), secrets)
        if key_id is None or secret is None:
            raise BlobError(
                "io",
                f"the S3 credentials of namespace {namespace} have not arrived (namespace "
                "secrets named in [blobstore] access_key_id / secret_access_key)",
            )
        client = self._clients.get(namespace)
        if client is not None and client.credentials == (key_id, secret):
            return client
        fresh = NamespaceClient(self._settings, key_id, secret)
        await fresh.open()
        self._clients[namespace] = fresh
        if client is not None:
            await client.close()
        return fresh

    def _answer(
        self,
        results: Any,
        serve: Callable[[GuestRun], Callable[[Any], None] | None],
    ) -> None:
        """Serve one call: its result, or its BlobError as the WIT error."""
        run = self._run()
        try:
            ok = serve(run)
        except BlobError as exc:
            _set_result(results[0], None, exc)
            return
        _set_result(results[0], ok, None)

    def _put(self, _context: Any, args: Any, _nargs: int, results: Any) -> None:
        """put-object(bucket, key, data-file) -> result<_, blob-error>"""
        bucket, key, name = read_str(args[0]), read_str(args[1]), read_str(args[2])

        def serve(run: GuestRun) -> None:
            check_key(key)
            fd, size = open_upload(guest_path(run.call.io_dir, name), self.max_object)
            try:
                self._call(run, bucket, lambda s3: _upload(s3, bucket, key, fd, size))
            finally:
                os.close(fd)

        self._answer(results, serve)

    def _get(self, _context: Any, args: Any, _nargs: int, results: Any) -> None:
        """get-object(bucket, key) -> result<string, blob-error>: a new file in /wr-io"""
        bucket, key = read_str(args[0]), read_str(args[1])

        def serve(run: GuestRun) -> Callable[[Any], None]:
            check_key(key)
            room = run.call.io_room()
            name = f"blob-{os.getpid()}-{next(_names)}.data"
            path = run.call.io_dir / name
            self._call(
                run,
                bucket,
                lambda s3: _download(s3, bucket, key, path, self.max_object, room),
            )
            return lambda v: set_string(v, name)

        self._answer(results, serve)

    def _delete(self, _context: Any, args: Any, _nargs: int, results: Any) -> None:
        """delete-object(bucket, key) -> result<_, blob-error>; a missing object: not-found"""
        bucket, key = read_str(args[0]), read_str(args[1])

        def serve(run: GuestRun) -> None:
            check_key(key)
            self._call(run, bucket, lambda s3: _delete(s3, bucket, key))

        self._answer(results, serve)

    def _list(self, _context: Any, args: Any, _nargs: int, results: Any) -> None:
        """list-objects(bucket, prefix) -> result<list<object-meta>, blob-error>"""
        bucket = read_str(args[0])
        try:
            prefix = read_optional_string(args[1]) or ""
        except ValueError as exc:
            raise _trap(str(exc)) from None

        def serve(run: GuestRun) -> Callable[[Any], None]:
            if len(prefix.encode()) > MAX_KEY_BYTES or "\0" in prefix:
                raise BlobError("io", f"prefix: expected at most {MAX_KEY_BYTES} bytes, no NUL")
            metas = self._call(run, bucket, lambda s3: _list(s3, bucket, prefix, self.max_list))
            return lambda v: _set_metas(v, metas)

        self._answer(results, serve)

    def _head(self, _context: Any, args: Any, _nargs: int, results: Any) -> None:
        """head-object(bucket, key) -> result<object-meta, blob-error>"""
        bucket, key = read_str(args[0]), read_str(args[1])

        def serve(run: GuestRun) -> Callable[[Any], None]:
            check_key(key)
            meta = self._call(run, bucket, lambda s3: _head(s3, bucket, key))
            return lambda v: _set_meta(v, meta)

        self._answer(results, serve)


# ---- the S3 calls (on the host loop) -----------------------------------------------------------


async def _upload(s3: Any, bucket: str, key: str, fd: int, size: int) -> None:
    what = f"put {bucket}/{key}"
    # A file object over a duplicate of fd: aiohttp streams it in chunks (and botocore reads
    # it once more, in chunks, to sign it); closing it leaves the caller's fd open.
    with open(os.dup(fd), "rb") as body:  # noqa: ASYNC230  (an open fd: nothing blocks)
        try:
            await s3.put_object(Bucket=bucket, Key=key, Body=body, ContentLength=size)
        except Exception as exc:
            raise _s3_error(exc, what) from None


async def _download(s3: Any, bucket: str, key: str, path: Path, limit: int, room: int) -> None:
    """Stream the object into a new file at path, stopping as soon as it passes limit or the
    room left in /wr-io; on any failure or cancellation the partial file is removed."""
    what = f"get {bucket}/{key}"
    try:
        resp = await s3.get_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise _s3_error(exc, what) from None
    body = resp["Body"]
    try:
        declared = int(resp.get("ContentLength") or 0)
        _check_size(what, declared, limit, room)
        # O_EXCL | O_NOFOLLOW: never write through something the guest planted under the name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            got = 0
            async for chunk in body.iter_chunks(CHUNK):
                got += len(chunk)
                _check_size(what, got, limit, room)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            raise
        os.close(fd)
    except BlobError:
        raise
    except asyncio.CancelledError:
        raise
    except OSError as exc:
        raise BlobError("io", f"{what}: cannot write {GUEST_IO_DIR}/{path.name}: {exc}") from None
    except Exception as exc:
        raise _s3_error(exc, what) from None
    finally:
        body.close()  # a body not read to its end: the connection is dropped, not reused


def _check_size(what: str, size: int, limit: int, room: int) -> None:
    if size > limit:
        raise BlobError(
            "too-large",
            f"{what}: object over the limit of {limit} bytes ([blobstore] max_object_size)",
        )
    if size > room:
        raise BlobError(
            "too-large",
            f"{what}: no room for it in {GUEST_IO_DIR} ({room} bytes left of the request's "
            "quota, twice max_body_mb)",
        )


async def _head(s3: Any, bucket: str, key: str) -> ObjectMeta:
    try:
        resp = await s3.head_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise _s3_error(exc, f"head {bucket}/{key}") from None
    return _meta(key, resp.get("ContentLength"), resp.get("LastModified"), resp.get("ETag"))


async def _delete(s3: Any, bucket: str, key: str) -> None:
    # S3 deletes are idempotent; the WIT promises not-found for a missing object, so ask first
    # (another client may delete it in between: then this delete still succeeds).
    await _head(s3, bucket, key)
    try:
        await s3.delete_object(Bucket=bucket, Key=key)
    except Exception as exc:
        raise _s3_error(exc, f"delete {bucket}/{key}") from None


async def _list(s3: Any, bucket: str, prefix: str, limit: int) -> list[ObjectMeta]:
    """At most limit keys, else too-large: pages are asked for up to limit + 1 keys in all,
    so a listing one over the limit is seen, never silently cut."""
    what = f"list {bucket}/{prefix}"
    metas: list[ObjectMeta] = []
    token: str | None = None
    while True:
        ask: dict[str, Any] = {
            "Bucket": bucket,
            "Prefix": prefix,
            "MaxKeys": min(PAGE, limit + 1 - len(metas)),
        }
        if token:
            ask["ContinuationToken"] = token
        try:
            page = await s3.list_objects_v2(**ask)
        except Exception as exc:
            raise _s3_error(exc, what) from None
        for item in page.get("Contents") or []:
            metas.append(
                _meta(item["Key"], item.get("Size"), item.get("LastModified"), item.get("ETag"))
            )
        if len(metas) > limit:
            raise BlobError(
                "too-large",
                f"{what}: over {limit} objects ([blobstore] max_list_objects; list a "
                "narrower prefix)",
            )
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return metas

"""A guest for the blobstore capability: every call through wr_sdk.blobstore, the raw WIT
binding with hostile file names, downloads left open, and the guest-side cost of put+get.

POST /op with a JSON body {"op": ..., "bucket": ..., "key": ..., ...} answers
{"ok": <result>} or {"error": <kind>, "message": ...}."""

import hashlib
import json
import os
import time

from wit_world.imports import store as raw

from wr_sdk import Module, Request, blobstore

app = Module()
_kept: list[blobstore.BlobReader] = []  # /op leak: downloads never closed


def _body(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + b"z" * (size % 256)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _meta(m: blobstore.ObjectMeta) -> dict[str, object]:
    return {"key": m.key, "size": m.size, "last_modified": m.last_modified, "etag": m.etag}


def _io_files() -> list[str]:
    return sorted(os.listdir("/wr-io"))


def _run(op: str, a: dict) -> object:
    bucket, key = a.get("bucket", ""), a.get("key", "")
    if op == "put":
        blobstore.put(bucket, key, _body(a["size"]))
        return {"sha256": _digest(_body(a["size"])), "io_files": _io_files()}
    if op == "write":  # streamed through a writer, in 64 KiB pieces
        with blobstore.create(bucket, key) as f:
            data = _body(a["size"])
            for i in range(0, len(data), 65536):
                f.write(data[i : i + 65536])
        return {"io_files": _io_files()}
    if op == "write_fail":  # an exception in the block: nothing uploaded
        try:
            with blobstore.create(bucket, key) as f:
                f.write(b"never")
                raise ValueError("changed my mind")
        except ValueError:
            pass
        return {"io_files": _io_files()}
    if op == "get":
        data = blobstore.get(bucket, key)
        return {"size": len(data), "sha256": _digest(data), "io_files": _io_files()}
    if op == "open":
        with blobstore.open(bucket, key) as f:
            first = f.read(10)
            rest = f.read()
            size = f.size
        return {"size": size, "sha256": _digest(first + rest), "io_files": _io_files()}
    if op == "head":
        return _meta(blobstore.head(bucket, key))
    if op == "delete":
        blobstore.delete(bucket, key)
        return None
    if op == "list":
        return [_meta(m) for m in blobstore.list(bucket, a.get("prefix"))]
    if op == "leak":  # open downloads and drop them unclosed (one unreferenced, one kept)
        blobstore.open(bucket, key)
        _kept.append(blobstore.open(bucket, key))
        return {"io_files": _io_files()}
    if op == "raw_put":  # the WIT call with any data-file name, after optional setup
        if a.get("symlink"):
            os.symlink(a["symlink"], "/wr-io/" + a["link_name"])
        if a.get("mkdir"):
            os.mkdir("/wr-io/" + a["mkdir"])
        if a.get("file"):
            with open("/wr-io/" + a["file"], "wb") as f:
                f.write(b"data")
        try:
            raw.put_object(bucket, key, a["data_file"])
        except Exception as exc:  # Err(BlobError_*)
            case = type(exc.value).__name__.rpartition("_")[2]
            return {"refused": case, "message": exc.value.value}
        return {"stored": True}
    if op == "bench":  # guest-side seconds per 1 MiB put+get, n times
        data = _body(1 << 20)
        started = time.perf_counter()
        for _ in range(a["n"]):
            blobstore.put(bucket, key, data)
            got = blobstore.get(bucket, key)
        per = (time.perf_counter() - started) / a["n"]
        assert got == data
        return {"put_get_ms": per * 1e3}
    raise ValueError(f"unknown op {op}")


@app.route("/op")
def op(request: Request) -> dict[str, object]:
    args = json.loads(request.body)
    try:
        return {"ok": _run(args["op"], args)}
    except blobstore.BlobError as exc:
        return {"error": exc.kind, "message": str(exc), "io_files": _io_files()}

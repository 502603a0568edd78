"""Host imports for module authors: outbound calls, logging and configuration.

The WIT bindings (`wit_world`) exist only inside a component build; imported at module
load so that componentize-py snapshots them (a fresh instance then pays nothing for them).
On a normal Python interpreter the functions raise GuestOnly.
"""

from __future__ import annotations

import contextlib
import itertools
import os

from wr_sdk._http import HOST_READ_MAX, Headers, Response
from wr_sdk._wire import GUEST_IO_DIR, INLINE_BODY_MAX, INVALID_CALL_PREFIX

try:
    from componentize_py_types import Err
    from wit_world.imports import config as _config
    from wit_world.imports import log as _log
    from wit_world.imports import outbound as _outbound
except ImportError:  # host side: codegen and tests import wr_sdk without a guest runtime
    _outbound = None

_call_ids = itertools.count()


class GuestOnly(RuntimeError):
    """A host import used outside a wruntime component."""


class CallError(Exception):
    """An outbound call that got no response (bad URL, connection refused, deadline)."""


class InvalidCallError(CallError):
    """A call the host refused to send as built: bad URL, method, header or body (nothing
    was sent, so a retry of the same call fails the same way)."""


def _need_host() -> None:
    if _outbound is None:
        raise GuestOnly("wr_sdk host functions work only inside a wruntime component")


def call(
    url: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    headers: Headers | None = None,
    version: str | None = None,
) -> Response:
    """Send a request to `http://{namespace}.{module}/...` (or an external URL) via the proxy.

    `version` is a semver requirement on the destination module, such as "^1.2".
    """
    _need_host()
    body_file = None
    if len(body) > INLINE_BODY_MAX:  # small bodies go inline: no file operations at all
        body_file = f"call-{next(_call_ids)}.req"
        _write_file(f"{GUEST_IO_DIR}/{body_file}", body)
        body = b""
    request = _outbound.OutboundRequest(
        method=method,
        url=url,
        headers=list(headers) if headers else [],
        body=bytes(body),
        body_file=body_file,
        version=version,
    )
    try:
        answer = _outbound.send(request)
    except Err as exc:
        error = InvalidCallError if str(exc.value).startswith(INVALID_CALL_PREFIX) else CallError
        raise error(f"{method} {url}: {exc.value}") from None
    if answer.body_file is None:
        data = answer.body
    else:
        reply_path = f"{GUEST_IO_DIR}/{answer.body_file}"
        try:
            data = _read_file(reply_path, answer.body_size)
        finally:
            _remove(reply_path)  # its room in /wr-io counts against the module's quota
    return Response(answer.status, data, answer.headers)


def _remove(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


# Every file operation in /wr-io is a hand-off to the host's I/O threads, so these use as few
# as they can: measured in a guest, writing 1 MiB took 2.1 ms with write() in a loop and
# 0.78 ms with one pwrite(); reading it back took 2.6 ms through a buffered file object and
# about a third of that with pread() up to the known size (100 B: 0.46 -> 0.14 ms).


def _write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        view = memoryview(data)
        offset = 0
        while offset < len(view):
            offset += os.pwrite(fd, view[offset:], offset)
    finally:
        os.close(fd)


def _read_file(path: str, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks: list[bytes] = []
        offset = 0
        while offset < size:
            chunk = os.pread(fd, min(size - offset, HOST_READ_MAX), offset)
            if not chunk:
                raise CallError(f"{path}: the reply body ended after {offset} of {size} bytes")
            chunks.append(chunk)
            offset += len(chunk)
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)


class _Log:
    """`log.info("...")` and friends write to the engine's log, tagged with the module."""

    def _write(self, level_name: str, message: str) -> None:
        _need_host()
        _log.write(getattr(_log.Level, level_name), message)

    def debug(self, message: str) -> None:
        self._write("DEBUG", message)

    def info(self, message: str) -> None:
        self._write("INFO", message)

    def warn(self, message: str) -> None:
        self._write("WARN", message)

    def error(self, message: str) -> None:
        self._write("ERROR", message)

    def __call__(self, message: str) -> None:
        self.info(message)


class _Config:
    """Module environment: `config.get("KEY")`, `config["KEY"]`, `config.all()`."""

    def get(self, key: str, default: str | None = None) -> str | None:
        _need_host()
        value = _config.get(key)
        return default if value is None else value

    def __getitem__(self, key: str) -> str:
        value = self.get(key)
        if value is None:
            raise KeyError(f"config key {key!r} is not set for this module")
        return value

    def all(self) -> dict[str, str]:
        _need_host()
        return dict(_config.get_all())


log = _Log()
config = _Config()

"""Request and Response as a module author sees them (plain Python, no WIT types)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

Headers = list[tuple[str, str]]

# The most a file in /wr-io hands out per read: reads of unknown length go in chunks of this
# size (asking for more only allocates a buffer that is cut back after each read).
HOST_READ_MAX = 64 * 1024


def read_fd(fd: int) -> bytes:
    """Read a file descriptor of unknown size to its end (stdin, fd 0)."""
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, HOST_READ_MAX)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def write_fd(fd: int, data: bytes) -> None:
    """Write all of data: WASI stdout may take only 64 KiB per write, so loop until done."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_request_body(size_hint: int | None = None) -> bytes:
    """The request body: the guest's stdin, an in-memory pipe the host fills.

    With the size known (content-length), the pipe hands the whole body over in one read into
    one buffer: no chunks to join, so a 1 MiB body touches 1 MiB of fresh guest memory instead
    of 2 (every fresh page costs the host a copy-on-write fault). The stream is still read to
    its end, so a wrong content-length loses nothing.
    """
    if not size_hint or size_hint < 0:
        return read_fd(0)
    data = os.read(0, size_hint)
    rest = read_fd(0)
    return data + rest if rest else data


def header(headers: Headers, name: str) -> str | None:
    """The first value of a header (names compared case-insensitively)."""
    name = name.lower()
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


class Request:
    """An incoming request; the body is read (see read_request_body) the first time it is used."""

    def __init__(self, method: str, path: str, headers: Headers, body: bytes | None = None):
        self.method = method
        self.path = path
        self.headers = headers
        self._body = body

    @property
    def route(self) -> str:
        """The path without its query string."""
        return self.path.split("?", 1)[0]

    @property
    def body(self) -> bytes:
        if self._body is None:
            self._body = read_request_body(_content_length(self.headers))
        return self._body

    def header(self, name: str) -> str | None:
        return header(self.headers, name)

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Response:
    """A response from a handler, or from an outbound call."""

    status: int = 200
    body: bytes = b""
    headers: Headers = field(default_factory=list)

    def header(self, name: str) -> str | None:
        return header(self.headers, name)

    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _content_length(headers: Headers) -> int | None:
    value = header(headers, "content-length")
    if value is None or not value.isdigit():
        return None
    return int(value)


def to_response(result: object) -> Response:
    """Turn what a handler returned into a Response: bytes, str, JSON-able value or Response."""
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(204)
    if isinstance(result, bytes | bytearray | memoryview):
        return Response(200, bytes(result), [("content-type", "application/octet-stream")])
    if isinstance(result, str):
        return Response(200, result.encode(), [("content-type", "text/plain; charset=utf-8")])
    return Response(200, json.dumps(result).encode(), [("content-type", "application/json")])

"""Frames between the front and its workers: a JSON header and a raw body, length-prefixed."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

_PREFIX = struct.Struct("<II")  # header length, body length
# Bodies above this size are not copied through the socket: the front writes a request body
# to a tmpfs file the worker hands to WASI as stdin, and the worker hands back its stdout file
# (one copy each way instead of three).
INLINE_MAX = 64 * 1024

Frame = tuple[dict[str, Any], bytes]


def encode(meta: dict[str, Any], body: bytes = b"") -> bytes:
    header = json.dumps(meta, separators=(",", ":")).encode()
    return _PREFIX.pack(len(header), len(body)) + header + body


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        read = sock.recv_into(view[got:], n - got)
        if read == 0:
            raise EOFError("peer closed the connection")
        got += read
    return bytes(buf)


def read_frame(sock: socket.socket) -> Frame:
    """Blocking read of one frame (worker side)."""
    header_len, body_len = _PREFIX.unpack(_recv_exact(sock, _PREFIX.size))
    meta = json.loads(_recv_exact(sock, header_len))
    body = _recv_exact(sock, body_len) if body_len else b""
    return meta, body


async def read_frame_async(reader: Any) -> Frame:
    """One frame from an asyncio StreamReader (front side)."""
    header_len, body_len = _PREFIX.unpack(await reader.readexactly(_PREFIX.size))
    meta = json.loads(await reader.readexactly(header_len))
    body = await reader.readexactly(body_len) if body_len else b""
    return meta, body

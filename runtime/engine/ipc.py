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
    """Blocking read of one frame (worker side): the header and the body in one read."""
    header_len, body_len = _PREFIX.unpack(_recv_exact(sock, _PREFIX.size))
    rest = _recv_exact(sock, header_len + body_len)
    return json.loads(rest[:header_len]), rest[header_len:]


async def read_frame_async(reader: Any) -> Frame:
    """One frame from an asyncio StreamReader (front side): two reads, not three (each may
    suspend the reading task once more)."""
    header_len, body_len = _PREFIX.unpack(await reader.readexactly(_PREFIX.size))
    rest = await reader.readexactly(header_len + body_len)
    if not body_len:
        return json.loads(rest), b""
    return json.loads(rest[:header_len]), rest[header_len:]

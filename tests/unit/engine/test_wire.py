"""Front/worker frames and traceparent propagation."""

from __future__ import annotations

import asyncio
import re
import socket
import threading

from runtime.engine import ipc, tracecontext


def test_frames_round_trip_over_a_socketpair() -> None:
    a, b = socket.socketpair()
    with a, b:
        body = bytes(range(256)) * 1000  # larger than the socket buffer: written by a thread
        frames = ipc.encode({"op": "req", "id": 7, "headers": [["k", "v"]]}, body)
        writer = threading.Thread(target=a.sendall, args=(frames + ipc.encode({"op": "stop"}),))
        writer.start()
        assert ipc.read_frame(b) == ({"op": "req", "id": 7, "headers": [["k", "v"]]}, body)
        assert ipc.read_frame(b) == ({"op": "stop"}, b"")
        writer.join(5)


def test_async_reader_reads_the_same_frames() -> None:
    async def scenario() -> ipc.Frame:
        a, b = socket.socketpair()
        reader, writer = await asyncio.open_connection(sock=a)
        b.sendall(ipc.encode({"op": "resp", "id": 1}, b"x" * 70000))
        frame = await ipc.read_frame_async(reader)
        writer.close()
        b.close()
        return frame

    assert asyncio.run(scenario()) == ({"op": "resp", "id": 1}, b"x" * 70000)


def test_outbound_traceparent_continues_the_request_context() -> None:
    incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    assert tracecontext.outbound(incoming) == incoming


def test_missing_or_bad_traceparent_starts_a_new_trace() -> None:
    bad = [
        None,
        "garbage",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",
    ]
    for incoming in bad:
        child = tracecontext.outbound(incoming)
        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", child)
        assert tracecontext.is_valid(child)

"""A worker process: `python -m runtime.engine.worker FD SETTINGS.json`.

Started with subprocess (never forked after wasmtime is loaded). Reads request frames from the
socket FD, runs each against a fresh instance, writes response frames back. A request blocked
in an outbound call is "parked", and one that runs long says so, so the front may send this
worker more work.

Leader/follower: the thread that reads a request also runs it (no hand-off between threads,
which cost ~0.3 ms per request). When its guest parks in an outbound call or runs long, it
passes the reader role to another pool thread first, so requests keep arriving, and once its
own request is done it stops reading.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from runtime.engine import ipc
from runtime.engine.host import READY_MAX, WasmHost
from runtime.engine.scheduler import NESTED_FACTOR
from runtime.engine.spec import WorkerSettings
from runtime.logs import setup_logging

log = logging.getLogger("wr-engine.worker")


class WorkerLoop:
    def __init__(self, sock: socket.socket, settings: WorkerSettings, scratch: Path) -> None:
        self.sock = sock
        self._write_lock = threading.Lock()
        self.host = WasmHost(
            settings.modules,
            settings.proxy_address,
            scratch,
            settings.resident_bytes,
            settings.capabilities,
            settings.engine_id,
        )
        # calls back into this engine may take a worker past `threads` (see scheduler.py)
        self.pool = ThreadPoolExecutor(settings.threads * NESTED_FACTOR, thread_name_prefix="call")
        self.reader: int | None = None  # the thread that reads the socket now
        self.done = threading.Event()

    def send(self, meta: dict[str, Any], body: bytes = b"") -> None:
        frame = ipc.encode(meta, body)
        with self._write_lock:
            self.sock.sendall(frame)

    def handle(self, meta: dict[str, Any], body: bytes) -> None:
        rid = meta["id"]
        try:
            outcome = self.host.run(
                meta["module"],
                meta["method"],
                meta["path"],
                [tuple(h) for h in meta["headers"]],
                body,
                on_park=lambda parked: self._park(rid, parked),
                body_file=Path(meta["body_file"]) if meta.get("body_file") else None,
                on_long=lambda: self._long(rid),
                time_left=meta.get("time_left"),
            )
            reply = {
                "op": "resp",
                "id": rid,
                "status": outcome.status,
                "headers": outcome.headers,
                "error": outcome.error,
                "body_file": outcome.body_file,
            }
            self.send(reply, outcome.body)
        except Exception as exc:  # a host bug must not kill the other calls of this worker
            log.exception("request failed in the host", extra={"wr_module": meta.get("module")})
            self.send(
                {
                    "op": "resp",
                    "id": rid,
                    "status": 500,
                    "headers": [],
                    "error": f"engine error: {type(exc).__name__}: {exc}",
                },
                f"engine error: {type(exc).__name__}".encode(),
            )
        finally:
            self.host.release()  # after the response is on its way, even after a host error

    def _park(self, rid: int, parked: bool) -> None:
        self.send({"op": "park" if parked else "unpark", "id": rid})
        if parked:
            self._hand_off_reading()

    def _long(self, rid: int) -> None:
        """The request has run long: read the next request on another thread, so the front
        may place another module's request here (see scheduler.py)."""
        self._hand_off_reading()
        self.send({"op": "long", "id": rid})

    def _hand_off_reading(self) -> None:
        if self.reader == threading.get_ident():
            self.reader = None
            self.pool.submit(self._read_loop)

    def _read_loop(self) -> None:
        """Read and run requests while this thread holds the reader role."""
        me = threading.get_ident()
        self.reader = me
        try:
            while self.reader == me:
                try:
                    meta, body = ipc.read_frame(self.sock)
                except (EOFError, ConnectionError):
                    self.done.set()  # the front went away: exit with it
                    return
                op = meta["op"]
                if op == "req":
                    self.handle(meta, body)
                elif op == "env":
                    self.host.set_env(meta["module"], meta["env"])
                elif op == "cap-secrets":
                    self.host.set_capability_secrets(meta["secrets"])
                elif op == "stop":
                    self.done.set()
                    return
        except BaseException:
            log.exception("worker reader failed")
            self.done.set()
            raise

    def serve(self) -> None:
        """Announce readiness, read and run requests until the front goes away."""
        for key in list(self.host.modules)[:READY_MAX]:
            self.host.prepare(key)  # the first requests find their instances built
        self.send({"op": "ready", "modules": sorted(self.host.modules)})
        self.pool.submit(self._read_loop)
        self.done.wait()


def main() -> None:
    fd, settings_path, scratch = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    settings = WorkerSettings.from_json(json.loads(Path(settings_path).read_text()))
    setup_logging("wr-engine-worker")
    sock = socket.socket(fileno=fd)
    try:
        loop = WorkerLoop(sock, settings, scratch)
    except Exception as exc:
        log.exception("worker failed to load its modules")
        sock.sendall(ipc.encode({"op": "fatal", "error": str(exc)}))
        sys.exit(3)
    # SIGTERM reaches workers too (systemd signals the whole cgroup, a terminal its process
    # group): stop like the front's "stop", so the bindings flush before the exit.
    signal.signal(signal.SIGTERM, lambda *_: loop.done.set())
    loop.serve()
    loop.host.close()  # capability bindings flush (tracing: spans not yet exported)
    # Threads may still be inside wasm; exiting the process is the only clean stop.
    logging.shutdown()
    os._exit(0)


if __name__ == "__main__":
    main()

"""The front's pool of worker processes: spawn, dispatch, park/unpark, deadlines, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import mmap
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from runtime import wire
from runtime.engine import ipc
from runtime.engine.scheduler import Saturated, Scheduler
from runtime.engine.spec import WorkerSettings

log = logging.getLogger("wr-engine.pool")
STOP_GRACE_SECS = 2.0  # a stopping worker flushes its spans; then it is killed
KILL_GRACE_SECS = 2.0  # past the module deadline, a worker that has not answered is killed


class WorkerStartError(Exception):
    """A worker that could not load its modules (the message says why)."""


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes | memoryview  # a large body is a read-only map of the worker's output file
    error: str | None = None


@dataclass
class _Worker:
    index: int
    proc: asyncio.subprocess.Process
    writer: asyncio.StreamWriter
    reader: asyncio.StreamReader
    inflight: dict[int, asyncio.Future[Reply]] = field(default_factory=dict)
    alive: bool = True
    task: asyncio.Task[None] | None = None


class WorkerPool:
    """N workers; the scheduler says which one runs each request."""

    def __init__(self, size: int, settings: WorkerSettings) -> None:
        self.size = size
        self.settings = settings
        self.workers: list[_Worker | None] = [None] * size
        self.scheduler = Scheduler(size, [m.key for m in settings.modules], settings.threads)
        self._env: dict[str, dict[str, str]] = {}
        self._cap_secrets: dict[str, dict[str, str]] = {}
        self._closing = False
        self.restarts = 0
        self._settings_file = Path(tempfile.mkstemp(prefix="wr-engine-", suffix=".json")[1])

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        self._settings_file.write_text(json.dumps(self.settings.to_json()))
        results = await asyncio.gather(
            *(self._spawn(i) for i in range(self.size)), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            await self.close()
            raise errors[0]

    async def _spawn(self, index: int) -> None:
        front, child = socket.socketpair()
        scratch = Path(self.settings.scratch_dir) / f"w{index}"
        shutil.rmtree(scratch, ignore_errors=True)  # leftovers of a worker that was killed
        scratch.mkdir(parents=True)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "runtime.engine.worker",
            str(child.fileno()),
            str(self._settings_file),
            str(scratch),
            pass_fds=(child.fileno(),),
        )
        child.close()
        reader, writer = await asyncio.open_connection(sock=front)
        try:
            meta, _ = await ipc.read_frame_async(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            meta = {"op": "fatal", "error": f"worker {index} exited during start-up"}
        if meta.get("op") != "ready":
            proc.kill()
            await proc.wait()
            raise WorkerStartError(meta.get("error", f"worker {index} failed to start"))
        worker = _Worker(index, proc, writer, reader)
        for key, env in self._env.items():
            writer.write(ipc.encode({"op": "env", "module": key, "env": env}))
        if self._cap_secrets:
            writer.write(ipc.encode({"op": "cap-secrets", "secrets": self._cap_secrets}))
        self.workers[index] = worker
        worker.task = asyncio.create_task(self._read_loop(worker))
        self.scheduler.worker_up(index)

    async def close(self, grace_secs: float = STOP_GRACE_SECS) -> None:
        """Ask every worker to stop (it flushes what its capability bindings hold, e.g. spans
        not yet exported), kill those still there after grace_secs."""
        self._closing = True
        live = [w for w in self.workers if w is not None]
        for worker in live:
            worker.alive = False
            with contextlib.suppress(OSError, RuntimeError):
                worker.writer.write(ipc.encode({"op": "stop"}))
        for worker in live:
            try:
                await asyncio.wait_for(worker.proc.wait(), grace_secs)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.kill()
                await worker.proc.wait()
            if worker.task is not None:
                worker.task.cancel()
        self._settings_file.unlink(missing_ok=True)
        shutil.rmtree(self.settings.scratch_dir, ignore_errors=True)

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers if w is not None and w.alive]

    def set_env(self, key: str, env: dict[str, str]) -> None:
        """New module environment (secrets arrived): every worker, now and after restarts."""
        self._env[key] = env
        for w in self.workers:
            if w is not None and w.alive:
                w.writer.write(ipc.encode({"op": "env", "module": key, "env": env}))

    def set_capability_secrets(self, secrets: dict[str, dict[str, str]]) -> None:
        """Namespace secrets for the capability bindings (never a guest's env): every worker,
        now and after restarts."""
        self._cap_secrets = secrets
        for w in self.workers:
            if w is not None and w.alive:
                w.writer.write(ipc.encode({"op": "cap-secrets", "secrets": secrets}))

    # -- dispatch ------------------------------------------------------------------------------

    async def call(
        self,
        module: str,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        deadline_secs: float,
        body_file: Path | None = None,
    ) -> Reply:
        """Run one request; 504 when deadline_secs (plus grace) pass with no answer. Time spent
        waiting for a worker counts: the guest gets what is left.

        A large body may come as body_file instead (on the scratch tmpfs: the worker moves it
        into the guest's directory; the caller removes it if it is still there afterwards).
        """
        started = time.monotonic()
        own = self.settings.engine_id
        nested = bool(own) and (wire.CALLER_ENGINE_HEADER, own) in headers
        try:
            placed = await self.scheduler.acquire(module, deadline_secs, nested)
        except Saturated as exc:
            return _plain(503, f"module {module}: {exc}")
        left = deadline_secs - (time.monotonic() - started)  # the guest gets what waiting left
        if placed is None or left <= 0:
            if placed is not None:
                self.scheduler.finish(placed.rid)
            return _plain(504, f"module {module}: no worker became free within the deadline")
        worker = self.workers[placed.worker]
        assert worker is not None  # the scheduler places only on live workers
        meta: dict[str, object] = {
            "op": "req",
            "id": placed.rid,
            "module": module,
            "method": method,
            "path": path,
            "headers": headers,
            "time_left": left,
        }
        future = self._send(worker, placed.rid, meta, body, body_file)
        if future is None:
            return _plain(503, f"module {module}: engine worker unavailable, retry")
        # A timer instead of wait_for(shield(...)), which costs two more futures, a task
        # and their callbacks on every request. Awaiting the future itself is safe: if this
        # task is cancelled (the client went away) the future is cancelled, and the reply,
        # when it comes, finds it done and is dropped.
        deadline = started + deadline_secs + KILL_GRACE_SECS
        timer = asyncio.get_running_loop().call_later(
            max(0.0, deadline - time.monotonic()), _expire, future
        )
        try:
            reply = await future
        finally:
            timer.cancel()
        if reply is not _EXPIRED:
            return reply
        log.error(
            "worker did not stop the call at its deadline; restarting it",
            extra={"wr_module": module, "worker": worker.index},
        )
        await self._recycle(worker)
        return _plain(504, f"module {module}: deadline of {deadline_secs:g} s exceeded")

    def _send(
        self,
        worker: _Worker,
        rid: int,
        meta: dict[str, object],
        body: bytes,
        body_file: Path | None,
    ) -> asyncio.Future[Reply] | None:
        """Hand request rid to worker; the future of its reply, None if the worker is gone."""
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        worker.inflight[rid] = future
        try:
            if body_file is not None:
                meta["body_file"] = str(body_file)
            elif len(body) > ipc.INLINE_MAX:
                meta["body_file"] = str(self._spill(worker, rid, body))
                body = b""
            worker.writer.write(ipc.encode(meta, body))
        except Exception:  # the worker went away between placing and writing
            self._finish(worker, rid)
            return None
        return future

    def _spill(self, worker: _Worker, rid: int, body: bytes) -> Path:
        """Write a large request body where the worker takes it as the guest's stdin."""
        path = Path(self.settings.scratch_dir) / f"w{worker.index}" / f"in-{rid}"
        path.write_bytes(body)
        return path

    def _finish(self, worker: _Worker, rid: int) -> asyncio.Future[Reply] | None:
        self.scheduler.finish(rid)
        return worker.inflight.pop(rid, None)

    async def _read_loop(self, worker: _Worker) -> None:
        try:
            while True:
                meta, body = await ipc.read_frame_async(worker.reader)
                op, rid = meta["op"], meta.get("id", 0)
                if op == "resp":
                    data: bytes | memoryview = body
                    if meta.get("body_file"):
                        data = _take_spilled(Path(meta["body_file"]))
                    future = self._finish(worker, rid)
                    if future is not None and not future.done():
                        headers = [(k, v) for k, v in meta["headers"]]
                        future.set_result(Reply(meta["status"], headers, data, meta["error"]))
                elif op in ("park", "unpark") and rid in worker.inflight:
                    self.scheduler.parked(rid, op == "park")
                elif op == "long" and rid in worker.inflight:
                    self.scheduler.went_long(rid)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        if worker.alive and not self._closing:
            log.error("worker exited unexpectedly; restarting it", extra={"worker": worker.index})
            await self._recycle(worker)

    async def _recycle(self, worker: _Worker) -> None:
        """Kill worker, fail its in-flight requests, start a replacement."""
        if not worker.alive:
            return
        worker.alive = False
        self.scheduler.worker_down(worker.index)  # before any await: place nothing more there
        with contextlib.suppress(ProcessLookupError):
            worker.proc.kill()
        await worker.proc.wait()
        for future in worker.inflight.values():
            if not future.done():
                future.set_result(_plain(500, "engine worker failed while running this request"))
        worker.inflight.clear()
        if worker.task is not None and worker.task is not asyncio.current_task():
            worker.task.cancel()
        if self._closing:
            return
        self.restarts += 1
        try:
            await self._spawn(worker.index)
        except Exception:
            log.exception("could not restart worker", extra={"worker": worker.index})


_EXPIRED = Reply(504, [], b"", "expired")  # set by _expire: no answer by the deadline


def _expire(future: asyncio.Future[Reply]) -> None:
    if not future.done():
        future.set_result(_EXPIRED)


def _plain(status: int, message: str) -> Reply:
    return Reply(status, [("content-type", "text/plain; charset=utf-8")], message.encode(), message)


def _take_spilled(path: Path) -> memoryview:
    """Map and remove a body file a worker left on tmpfs.

    The map is written to the client as it is: no copy into the front's heap, whose fresh
    pages for a 1 MiB body cost more than the copy itself. Unlinking at once is safe (the
    pages live while mapped), and the map goes away with the last reference to the view.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.unlink(path)
        return memoryview(mmap.mmap(fd, 0, prot=mmap.PROT_READ))
    finally:
        os.close(fd)

"""The wasmtime host in a worker: a linker with the wruntime imports, a fresh instance per call."""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import Store, WasiConfig
from wasmtime.component import Component, Linker

from runtime.engine.capabilities import check_imports, load_binding
from runtime.engine.guest_log import LEVELS
from runtime.engine.guest_run import GuestRun
from runtime.engine.handler_call import call_handle, handle_shape_problem
from runtime.engine.ipc import INLINE_MAX
from runtime.engine.outbound import OutboundError, ProxyClient
from runtime.engine.scratch import Slot
from runtime.engine.send_import import SendReply, SendRequest, add_send, send_shape_problem
from runtime.engine.spec import ModuleSpec
from runtime.engine.wasi_stdin import Buffer, set_stdin_bytes
from runtime.engine.wasm_config import EPOCH_TICK_SECS, make_config
from runtime.engine.watchdog import watch
from runtime.wire import GUEST_IO_DIR

HANDLER_EXPORT = "wruntime:runtime/handler@0.1.0"


@dataclass
class Outcome:
    """The result of one call into a guest."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    error: str | None = None  # why the host answered instead of the guest
    body_file: str | None = None  # a large body left in this file (the reader unlinks it)


@dataclass
class LoadedModule:
    spec: ModuleSpec
    component: Component
    handle_index: Any
    env: dict[str, str] = field(default_factory=dict)


class WasmHost:
    """One wasmtime Engine, the deserialized components and a shared Linker."""

    def __init__(
        self,
        modules: list[ModuleSpec],
        proxy_address: str,
        scratch: Path,
        resident_bytes: int = 0,
        capabilities: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """capabilities: the host bindings to link, with their settings (see capabilities.py)."""
        self.engine = wasmtime.Engine(make_config(resident_bytes))
        self._bindings = [
            load_binding(name)(settings)  # type: ignore[arg-type]
            for name, settings in sorted((capabilities or {}).items())
        ]
        self._scratch = scratch
        self._local = threading.local()
        self._slots = 0
        self._free_slots: list[Slot] = []
        self._slot_lock = threading.Lock()
        self._outputs = itertools.count()
        self._proxy = ProxyClient(proxy_address)
        self.linker = self._make_linker()
        self.modules: dict[str, LoadedModule] = {}
        for spec in modules:
            self.modules[spec.key] = self._load(spec)
        self._stop = threading.Event()
        threading.Thread(target=self._tick, name="epoch-ticker", daemon=True).start()

    # -- setup -------------------------------------------------------------------------------

    def _load(self, spec: ModuleSpec) -> LoadedModule:
        component = Component.deserialize_file(self.engine, spec.artifact)
        check_imports(spec.key, component.type.imports(self.engine).keys(), spec.capabilities)
        iface = component.get_export_index(HANDLER_EXPORT)
        handle = component.get_export_index("handle", iface) if iface is not None else None
        if handle is None:
            raise ValueError(f"module {spec.key}: the component does not export {HANDLER_EXPORT}")
        problem = handle_shape_problem(component, self.engine, HANDLER_EXPORT) or (
            send_shape_problem(component, self.engine)
        )
        if problem:
            raise ValueError(
                f"module {spec.key} was built against another version of the wruntime WIT "
                f"({problem}); rebuild it with this wruntime's `wrctl build`"
            )
        return LoadedModule(spec, component, handle, dict(spec.env))

    def _make_linker(self) -> Linker:
        linker = Linker(self.engine)
        linker.add_wasip2()
        with linker.root() as root:
            with root.add_instance("wruntime:runtime/log@0.1.0") as li:
                li.add_func("write", self._log_write)
            with root.add_instance("wruntime:runtime/config@0.1.0") as li:
                li.add_func("get", self._config_get)
                li.add_func("get-all", self._config_all)
            with root.add_instance("wruntime:runtime/outbound@0.1.0") as li:
                add_send(li, self._send)
            for binding in self._bindings:
                binding.link(root)
        return linker

    def _tick(self) -> None:
        while not self._stop.wait(EPOCH_TICK_SECS):
            self.engine.increment_epoch()

    def close(self) -> None:
        """Let the capability bindings flush (the worker exits right after)."""
        for binding in self._bindings:
            with contextlib.suppress(Exception):
                binding.close()

    def set_env(self, key: str, env: dict[str, str]) -> None:
        self.modules[key].env = dict(env)

    # -- host imports (never raise: wasmtime-py keeps their exceptions in a module global) -----

    def _current(self) -> GuestRun:
        run: GuestRun = self._local.run
        return run

    def _log_write(self, _store: Any, level: str, message: str) -> None:
        with contextlib.suppress(Exception):
            self._current().log.write(LEVELS.get(level, LEVELS["info"]), message)

    def _config_get(self, _store: Any, key: str) -> str | None:
        try:
            return self.modules[self._current().spec.key].env.get(key)
        except Exception:
            return None

    def _config_all(self, _store: Any) -> list[tuple[str, str]]:
        try:
            return sorted(self.modules[self._current().spec.key].env.items())
        except Exception:
            return []

    def _send(self, req: SendRequest) -> SendReply | str:
        try:
            run = self._current()
            prepared = self._proxy.prepare(
                run.call, req.method, req.url, req.headers, req.body_file, req.version
            )
            run.park(True)  # only network waits park: a refused request returns at once
            try:
                reply = self._proxy.deliver(run.call, prepared)
            finally:
                run.park(False)
            return SendReply(reply.status, reply.headers, reply.body_file, reply.body_size)
        except OutboundError as exc:
            return str(exc)
        except Exception as exc:
            return f"outbound call failed: {type(exc).__name__}: {exc}"

    # -- one request ---------------------------------------------------------------------------

    def _take_slot(self) -> Slot:
        with self._slot_lock:
            if self._free_slots:
                return self._free_slots.pop()
            self._slots += 1
            n = self._slots
        return Slot(self._scratch / f"slot-{n}")

    def _give_slot(self, slot: Slot) -> None:
        with self._slot_lock:
            self._free_slots.append(slot)

    def run(
        self,
        key: str,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
        body: bytes,
        on_park: Callable[[bool], None] = lambda _parked: None,
        body_file: Path | None = None,
        on_long: Callable[[], None] = lambda: None,
        time_left: float | None = None,
    ) -> Outcome:
        """Serve one request in a fresh instance. The body is `body`, or the file body_file
        (consumed). on_park: the guest waits in (is back from) an outbound call; on_long: it
        has run for a while (guest_run.LONG_RUN_SECS); time_left: what remains of the
        request's deadline (it may have waited for a worker), else the module's."""
        module = self.modules[key]
        slot = self._take_slot()
        self._local.slot = slot  # given back by release()
        trace = next((v for k, v in headers if k == "traceparent"), None)
        run = GuestRun(module.spec, slot, trace, on_park, on_long, time_left)
        self._local.run = run
        for binding in self._bindings:
            binding.begin(run)
        try:
            if body_file is None:
                return self._call(module, run, body, method, path, headers)
            with open(body_file, "rb") as f:
                if os.fstat(f.fileno()).st_size == 0:
                    return self._call(module, run, b"", method, path, headers)
                with _map_copy(f.fileno()) as stdin:
                    return self._call(module, run, stdin, method, path, headers)
        finally:
            for binding in self._bindings:
                binding.end(run)
            self._local.run = None
            self._local.finished = run  # its stderr is logged by release()
            slot.reset()
            if body_file is not None:
                body_file.unlink(missing_ok=True)

    def release(self) -> None:
        """Log the guest's stderr, drop this thread's last Store and give its slot back. The
        worker calls this after the response is on its way: dropping an instance costs
        0.1-0.2 ms."""
        run: GuestRun | None = getattr(self._local, "finished", None)
        if run is not None:
            self._local.finished = None
            run.log.flush_stderr(run.slot.stderr)
            run.log.close()
        self._local.store = None
        slot: Slot | None = getattr(self._local, "slot", None)
        if slot is not None:
            self._local.slot = None
            self._give_slot(slot)

    def _instantiate(self, module: LoadedModule, run: GuestRun, stdin: Buffer) -> tuple[Store, Any]:
        """A fresh Store and instance of module, its stdin a copy of stdin, its other WASI
        files in the run's slot, watched every tick; raises what instantiation raises."""
        store = Store(self.engine)
        store.set_limits(memory_size=module.spec.memory_limit_bytes)
        watch(store, run.tick)
        wasi = WasiConfig()
        set_stdin_bytes(wasi, stdin)
        wasi.stdout_file = str(run.slot.stdout)
        wasi.stderr_file = str(run.slot.stderr)
        wasi.preopen_dir(str(run.slot.io), GUEST_IO_DIR)
        store.set_wasi(wasi)
        instance = self.linker.instantiate(store, module.component)
        return store, instance.get_func(store, module.handle_index)

    def _call(
        self,
        module: LoadedModule,
        run: GuestRun,
        stdin: Buffer,
        method: str,
        path: str,
        headers: list[tuple[str, str]],
    ) -> Outcome:
        try:
            store, func = self._instantiate(module, run, stdin)
            self._local.store = store  # kept until release(): see there
            if func is None:
                return _host_error(500, "the component has no handle function")
            status, headers_out = call_handle(store, func, method, path, headers)
            func.post_return(store)
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            if run.stopped is not None:
                return _host_error(*run.stopped)
            return _trap_outcome(module.spec, exc)
        problem = run.response_problem(status, headers_out)
        if problem is not None:
            return _host_error(*problem)
        return self._body_outcome(run.slot, status, headers_out)

    def _body_outcome(self, slot: Slot, status: int, headers: list[tuple[str, str]]) -> Outcome:
        """The guest's answer, its body inline when small, else the stdout file handed over."""
        try:
            size = slot.stdout.stat().st_size
        except FileNotFoundError:
            return Outcome(status, headers, b"")
        if size <= INLINE_MAX:
            return Outcome(status, headers, slot.stdout.read_bytes())
        kept = slot.root / f"out-{next(self._outputs)}"
        slot.stdout.rename(kept)
        return Outcome(status, headers, b"", body_file=str(kept))


def _map_copy(fd: int) -> mmap.mmap:
    """A private, writable map of a (non-empty) spilled body: ctypes can point into it."""
    return mmap.mmap(fd, 0, access=mmap.ACCESS_COPY)


def _host_error(status: int, message: str) -> Outcome:
    return Outcome(
        status, [("content-type", "text/plain; charset=utf-8")], message.encode(), error=message
    )


def _trap_outcome(spec: ModuleSpec, exc: Exception) -> Outcome:
    text = str(exc)
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return _host_error(500, f"module {spec.key} trapped: {first[:200]}")

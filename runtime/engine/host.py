"""The wasmtime host in a worker: a linker with the wruntime imports, a fresh instance per call."""

from __future__ import annotations

import contextlib
import itertools
import logging
import mmap
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import Store, WasiConfig
from wasmtime import _ffi as ffi
from wasmtime.component import Component, Linker

from runtime.engine.capabilities import check_imports, load_binding
from runtime.engine.guest_log import LEVELS
from runtime.engine.guest_run import GuestRun
from runtime.engine.handler_call import call_handle, handle_shape_problem
from runtime.engine.host_abi import add_direct_func, read_str
from runtime.engine.host_loop import host_loop
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
# Instances built ahead of their request, one per recently served module, at most this many
# per worker: each holds a pooled instance slot (wasm_config.POOL) and its dirtied pages.
READY_MAX = 8
# Building one ahead gets this long at most (a Python guest takes ~1 ms): the worker's
# reading thread does it, and a guest whose start-up hangs must not hold the next request.
AHEAD_BUDGET_SECS = 1.0

log = logging.getLogger("wr-engine.host")


@dataclass
class Outcome:
    """The result of one call into a guest."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    error: str | None = None  # why the host answered instead of the guest
    body_file: str | None = None  # a large body left in this file (the reader unlinks it)


class _Watch:
    """The watchdog check of one instance: before its request arrives only a deadline on
    instantiation (it runs the guest's start functions), then the request's GuestRun."""

    def __init__(self, budget_secs: float) -> None:
        self.deadline = time.monotonic() + budget_secs
        self.run: GuestRun | None = None

    def __call__(self) -> str | None:
        if self.run is not None:
            return self.run.tick()
        if time.monotonic() >= self.deadline:
            return "instantiation ran past the module's deadline"
        return None


@dataclass
class _Instance:
    """A fresh instance that has served nothing yet: its Store has no WASI context until its
    request sets one (instantiation makes no WASI calls)."""

    store: Store
    func: Any
    watch: _Watch


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
        engine_id: str = "",
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
        self._proxy = ProxyClient(proxy_address, engine_id)
        self._ready: OrderedDict[str, _Instance] = OrderedDict()  # by module, oldest first
        self._ready_lock = threading.Lock()
        self._no_ahead: set[str] = set()  # modules whose instantiation failed once
        self._active = 0  # requests between run() and release(), on any thread
        self._wanted: dict[str, None] = {}  # modules served since the worker was last idle
        self._building: dict[str, threading.Event] = {}  # builds ahead in progress
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
                add_direct_func(li, "write", self._log_write)
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
        host_loop().close()

    def set_env(self, key: str, env: dict[str, str]) -> None:
        self.modules[key].env = dict(env)

    def set_capability_secrets(self, secrets: dict[str, dict[str, str]]) -> None:
        """namespace -> {key: value} from registration, for bindings that take secrets."""
        for binding in self._bindings:
            take = getattr(binding, "set_secrets", None)
            if take is not None:
                take(secrets)

    # -- host imports (never raise: wasmtime-py keeps their exceptions in a module global) -----

    def _current(self) -> GuestRun:
        run: GuestRun = self._local.run
        return run

    def _log_write(self, _context: Any, args: Any, _nargs: int, _results: Any) -> None:
        """write(level, message), a direct callback: every request may log, and wasmtime-py's
        generic conversion cost more than the record itself."""
        with contextlib.suppress(Exception):
            level = ffi.to_str(args[0].of.enumeration)
            self._current().log.write(LEVELS.get(level, LEVELS["info"]), read_str(args[1]))

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
                run.call, req.method, req.url, req.headers, req.body_file, req.version, req.body
            )
            run.park(True)  # only network waits park: a refused request returns at once
            try:
                reply = self._proxy.deliver(run.call, prepared)
            finally:
                run.park(False)
            return SendReply(
                reply.status, reply.headers, reply.body, reply.body_file, reply.body_size
            )
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
        self._local.served = key  # release() builds its next instance
        with self._ready_lock:
            self._active += 1
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
        served: str | None = getattr(self._local, "served", None)
        if served is None:
            return
        self._local.served = None
        # Build while no other request runs here (one parked in an outbound call may resume
        # at any moment): the last request to finish builds for all that were served.
        with self._ready_lock:
            self._active -= 1
            self._wanted[served] = None
            if self._active:
                return
            wanted = [served, *(k for k in self._wanted if k != served)]
            self._wanted = {}
        for i, key in enumerate(wanted):
            if i and self._active:  # a request started meanwhile: leave it the cores
                with self._ready_lock:
                    self._wanted.update(dict.fromkeys(wanted[i:]))
                return
            self.prepare(key)

    # -- instances built ahead of their request -------------------------------------------------

    def prepare(self, key: str) -> None:
        """Build module key's next instance now, unless one is waiting already: the request
        then skips instantiation (~0.6-1.1 ms for a Python guest). Call it on the thread that
        serves requests, between them: building on another thread while wasm runs costs
        TLB-shootdown interrupts (mapping changes) that outweigh the gain (measured ~3x CPU)."""
        with self._ready_lock:
            if key in self._ready or key in self._no_ahead or key in self._building:
                if key in self._ready:
                    self._ready.move_to_end(key)
                return
            done = self._building[key] = threading.Event()
        built: _Instance | None = None
        try:
            built = self._build(self.modules[key], AHEAD_BUDGET_SECS)
        except Exception as exc:  # each request builds its own and reports what fails
            self._no_ahead.add(key)
            log.warning(
                "could not build an instance ahead; building one per request",
                extra={"wr_module": key, "error": str(exc)[:300]},
            )
        finally:
            with self._ready_lock:
                del self._building[key]
                if built is not None:
                    self._ready[key] = built
                    while len(self._ready) > READY_MAX:
                        self._ready.popitem(last=False)
            done.set()

    def _take_ready(self, key: str) -> _Instance | None:
        """The instance built ahead for key; one being built is waited for (it is done
        sooner than a second build, which would also contend with it for the cores)."""
        with self._ready_lock:
            ready = self._ready.pop(key, None)
            building = self._building.get(key) if ready is None else None
        if building is None or not building.wait(AHEAD_BUDGET_SECS):
            return ready
        with self._ready_lock:
            return self._ready.pop(key, None)

    def _build(
        self, module: LoadedModule, budget_secs: float, run: GuestRun | None = None
    ) -> _Instance:
        """A fresh Store and instance, watched from the start (by run when given, else for
        budget_secs); raises what instantiation raises."""
        store = Store(self.engine)
        store.set_limits(memory_size=module.spec.memory_limit_bytes)
        guard = _Watch(budget_secs)
        guard.run = run
        watch(store, guard)
        instance = self.linker.instantiate(store, module.component)
        return _Instance(store, instance.get_func(store, module.handle_index), guard)

    def _instantiate(self, module: LoadedModule, run: GuestRun, stdin: Buffer) -> tuple[Store, Any]:
        """A fresh instance of module (built ahead if one waits), its stdin a copy of stdin,
        its other WASI files in the run's slot, watched every tick for run; raises what
        instantiation raises. Never an instance that served a request before."""
        fresh = self._take_ready(module.spec.key)
        if fresh is None:
            fresh = self._build(module, module.spec.timeout_secs, run)
        else:
            fresh.watch.run = run
            fresh.store.set_epoch_deadline(1)  # its deadline passed while it waited
        wasi = WasiConfig()
        set_stdin_bytes(wasi, stdin)
        wasi.stdout_file = str(run.slot.stdout)
        wasi.stderr_file = str(run.slot.stderr)
        wasi.preopen_dir(str(run.slot.io), GUEST_IO_DIR)
        fresh.store.set_wasi(wasi)
        return fresh.store, fresh.func

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

"""The engine service: prepare modules, start workers, serve HTTP, register, stop cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import time
import uuid
from pathlib import Path

from runtime.api import wruntime_pb2 as pb
from runtime.engine.capabilities import secret_keys, worker_settings
from runtime.engine.component_cache import ComponentCache
from runtime.engine.config import EngineConfig, split_host_port
from runtime.engine.http_front import EngineConnection, Listener
from runtime.engine.metrics import HEALTHY_MODULES, WORKER_RESTARTS
from runtime.engine.modules import PreparedModule, module_env, prepare
from runtime.engine.pool import WorkerPool
from runtime.engine.registration import Registrar
from runtime.engine.server import Front
from runtime.engine.spec import WorkerSettings
from runtime.telemetry import setup_tracing, shutdown_tracing
from runtime.version import __version__
from runtime.wire import HEALTH_PATH

log = logging.getLogger("wr-engine")
MODULE_HEALTH_TIMEOUT = 5.0


def scratch_root() -> Path:
    """Per-request files live on tmpfs when there is one."""
    base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix="wr-engine-", dir=base))


class EngineService:
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.engine_id = str(uuid.uuid4())
        self.modules: list[PreparedModule] = []
        self.pool: WorkerPool | None = None
        self.registrar: Registrar | None = None
        self._server: asyncio.Server | None = None
        self._listener: Listener | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.healthy: set[str] = set()

    async def start(self) -> None:
        started = time.monotonic()
        if self.config.node.tls is not None:
            self.config.node.tls.files().read()  # unreadable: refuse to start, naming the file
        cache = ComponentCache(self.config.cache_dir)
        self.modules = await asyncio.to_thread(prepare, self.config.module, cache)
        settings = WorkerSettings(
            [m.spec() for m in self.modules],
            self.config.node.proxy_address,
            str(scratch_root()),
            resident_bytes=self.config.resident_memory_mb << 20,
            engine_id=self.engine_id,
            capabilities=worker_settings(
                self.config.model_dump(mode="json"),
                [c for m in self.config.module for c in m.capabilities],
            ),
        )
        self.pool = WorkerPool(self.config.workers, settings)
        await self.pool.start()
        tracing = setup_tracing(
            "wr-engine", self.config.otlp_endpoint, self.config.trace_sample_ratio
        )
        front = Front(self.pool, {s.key: s for s in settings.modules}, self.health_report, tracing)
        listener = Listener(front, Path(settings.scratch_dir) / "front")
        host, port = split_host_port(self.config.listen_address)
        self._server = await asyncio.get_running_loop().create_server(
            lambda: EngineConnection(listener), host, port, reuse_address=True, backlog=1024
        )
        self._listener = listener
        log.info(
            "engine serving",
            extra={
                "address": self.config.listen_address,
                "workers": self.config.workers,
                "modules": [m.key for m in self.modules],
                "startup_seconds": round(time.monotonic() - started, 3),
            },
        )
        if self.config.node.control_address:
            assert self.config.node.tls is not None  # the config requires it with control_address
            self.registrar = Registrar(
                self.config.node.control_address,
                self.config.node.tls.files(),
                self.registration(),
                self.check_modules,
                self._apply_secrets,
            )
            self._tasks.append(asyncio.create_task(self.registrar.run()))

    def registration(self) -> pb.EngineRegistration:
        host, port = split_host_port(self.config.listen_address)
        if host in {"0.0.0.0", "::"}:
            host = "127.0.0.1"
        authority = f"[{host}]" if ":" in host else host
        return pb.EngineRegistration(
            engine_id=self.engine_id,
            address=f"http://{authority}:{port}",
            modules=[m.descriptor() for m in self.modules],
            proxy_address=self.config.node.proxy_address,
            secrets=[
                pb.SecretRequest(namespace=ns, key=key) for ns, key in sorted(self.wanted_secrets())
            ],
            node=self.config.node.name,
            runtime_version=__version__,
        )

    def wanted_secrets(self) -> set[tuple[str, str]]:
        """(namespace, key) of every secret the modules need: their env's secret values and
        what their granted capabilities need (a database role's password, an API key)."""
        node_config = self.config.model_dump(mode="json", exclude={"module"})
        wanted: set[tuple[str, str]] = set()
        for m in self.modules:
            keys = set(m.config.secret_keys().values())
            for capability in m.config.capabilities:
                keys.update(secret_keys(capability, node_config))
            wanted.update((m.config.namespace, key) for key in keys)
        return wanted

    def _apply_secrets(self, secrets: dict[str, dict[str, str]]) -> None:
        assert self.pool is not None
        for m in self.modules:
            if m.config.secret_keys():
                self.pool.set_env(m.key, module_env(m.config, secrets))
        # The bindings take what their capabilities need; the guests never see these values.
        self.pool.set_capability_secrets(secrets)

    async def _module_healthy(self, module: PreparedModule) -> bool:
        assert self.pool is not None
        try:
            reply = await asyncio.wait_for(
                self.pool.call(module.key, "GET", HEALTH_PATH, [], b"", MODULE_HEALTH_TIMEOUT),
                MODULE_HEALTH_TIMEOUT,
            )
        except TimeoutError:
            return False
        return 200 <= reply.status < 300

    async def check_modules(self) -> list[pb.ModuleDescriptor]:
        """Run `/__health` in every module; the descriptors of those that answered 2xx."""
        results = await asyncio.gather(*(self._module_healthy(m) for m in self.modules))
        self.healthy = {m.key for m, ok in zip(self.modules, results, strict=True) if ok}
        HEALTHY_MODULES.set(len(self.healthy))
        if self.pool is not None:
            WORKER_RESTARTS.set(self.pool.restarts)
        return [m.descriptor() for m in self.modules if m.key in self.healthy]

    async def health_report(self) -> dict[str, object]:
        assert self.pool is not None
        return {
            "ok": bool(self.pool.pids()),
            "engine_id": self.engine_id,
            "workers": len(self.pool.pids()),
            "modules": [m.key for m in self.modules],
            "registered": bool(self.registrar and self.registrar.registered.is_set()),
            "load": self.pool.scheduler.snapshot(),
        }

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.registrar is not None:
            await self.registrar.deregister()
        if self._server is not None:
            self._server.close()
        if self._listener is not None:
            self._listener.close_all()
        if self.pool is not None:
            await self.pool.close()
        shutdown_tracing()


async def serve(config: EngineConfig) -> None:
    """Run until SIGTERM or SIGINT."""
    service = EngineService(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await service.start()
        await stop.wait()
        log.info("stopping", extra={"pid": os.getpid()})
    finally:
        await service.stop()

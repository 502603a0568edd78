"""ManagerServer: the store, the gRPC service, the admin endpoints and the health monitor,
started and stopped together (used by the CLI and by in-process tests)."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Mapping

import grpc
from aiohttp import web

from runtime.admin import admin_app, start_admin
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import TlsMaterialError, server_credentials
from runtime.manager.config import ManagerConfig, split_host_port
from runtime.manager.errors import StartupError
from runtime.manager.health_monitor import HealthMonitor
from runtime.manager.job_runner import JobRunner
from runtime.manager.metrics import ManagerMetrics
from runtime.manager.presence import ManagerPresence, advertised
from runtime.manager.secretbox import SecretBox, SecretDecryptError
from runtime.manager.service import ManagerService
from runtime.manager.state.engines import Timeouts
from runtime.manager.state.manager_state import Clock, ManagerState
from runtime.manager.store import Backend, StoreUnavailable, open_backend, redact_url

log = logging.getLogger("runtime.manager")


async def open_state(
    config: ManagerConfig, environ: Mapping[str, str] | None = None, clock: Clock = time.time
) -> ManagerState:
    """Key, store and startup key check; every failure is a one-line StartupError."""
    box = SecretBox.from_env(config.secrets_key_env, environ)
    try:
        backend = await open_backend(
            config.state_url(), max_connections=config.postgres_max_connections
        )
    except StoreUnavailable as exc:
        raise StartupError(str(exc)) from None
    timeouts = Timeouts(
        config.engine_heartbeat_timeout_secs, config.module_timeout, config.engine_retention_secs
    )
    state = ManagerState(backend, box, timeouts, clock)
    try:
        await state.verify_secrets()
    except SecretDecryptError as exc:
        await backend.close()
        raise StartupError(
            f"{config.secrets_key_env} cannot decrypt the stored secrets ({exc}):"
            " it is not the key they were written with"
        ) from None
    return state


class ManagerServer:
    """One running manager. Ports of 0 in the config bind free ports (see `grpc_port`)."""

    def __init__(
        self,
        config: ManagerConfig,
        environ: Mapping[str, str] | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.config = config
        self._environ = environ
        self._clock = clock
        self.metrics = ManagerMetrics()
        self.grpc_port = 0
        self.admin_port = 0
        self.state: ManagerState | None = None
        self._server: grpc.aio.Server | None = None
        self._admin: web.AppRunner | None = None
        self.monitor: HealthMonitor | None = None
        self.runner: JobRunner | None = None
        self.presence: ManagerPresence | None = None
        # This run's id in the managers table (and in job claims): new on every start.
        self.manager_id = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"

    @property
    def backend(self) -> Backend:
        assert self.state is not None, "manager not started"
        return self.state.backend

    async def start(self) -> None:
        # TLS material first: a bad path is reported before any store is opened or migrated.
        try:
            credentials = server_credentials(self.config.tls.files())
        except TlsMaterialError as exc:
            raise StartupError(f"tls: {exc}") from None
        self.state = await open_state(self.config, self._environ, self._clock)
        try:
            await self._start_listeners(self.state, credentials)
        except BaseException:
            await self.stop()
            raise
        self.monitor = HealthMonitor(self.state, self.metrics)
        await self.monitor.tick()
        self.monitor.start()
        presence = self.presence = ManagerPresence(
            self.state,
            self.manager_id,
            advertised(
                split_host_port(self.config.listen_address)[0],
                self.grpc_port,
                self.config.advertise_address,
            ),
            self.config.manager_heartbeat_secs,
            self.config.manager_expiry_secs,
        )
        await presence.start()
        if self.config.jobs.dispatch:
            # Who holds a claim, in the store: enough to find the manager in logs.
            self.runner = JobRunner(
                self.state,
                self.config.jobs,
                self.config.local_proxy_address,
                self.metrics,
                self.manager_id,
            )
            self.runner.start()
        log.info(
            "manager started",
            extra={
                "cluster": self.config.cluster,
                "grpc": f"{split_host_port(self.config.listen_address)[0]}:{self.grpc_port}",
                "admin": f"{split_host_port(self.config.admin_address)[0]}:{self.admin_port}",
                "state": redact_url(self.config.state_url()),
                "manager_id": self.manager_id,
                "advertised": presence.address,
            },
        )

    async def _start_listeners(
        self, state: ManagerState, credentials: grpc.ServerCredentials
    ) -> None:
        server = grpc.aio.server()
        servicer = ManagerService(
            state,
            self.metrics,
            self.config.cluster,
            self.config.jobs,
            self._wake_runner,
            self.config.manager_expiry_secs,
        )
        pb_grpc.add_ManagerServiceServicer_to_server(servicer, server)
        host, port = split_host_port(self.config.listen_address)
        try:
            self.grpc_port = server.add_secure_port(_join(host, port), credentials)
        except RuntimeError as exc:
            raise StartupError(
                f"listen_address: cannot bind {self.config.listen_address}: {exc}"
            ) from None
        await server.start()
        self._server = server
        host, port = split_host_port(self.config.admin_address)
        try:
            self._admin = await start_admin(
                admin_app(self._health, self.metrics.registry), host, port
            )
        except OSError as exc:
            raise StartupError(
                f"admin_address: cannot bind {self.config.admin_address}: {exc}"
            ) from None
        self.admin_port = _bound_port(self._admin)

    def _wake_runner(self) -> None:
        if self.runner is not None:
            self.runner.wake()

    async def _health(self) -> dict[str, object]:
        assert self.state is not None
        try:
            await self.state.backend.ping()
        except StoreUnavailable as exc:
            return {"ok": False, "store": self.state.backend.kind, "error": str(exc)}
        return {"ok": True, "store": self.state.backend.kind}

    async def stop(self, grace: float = 2.0) -> None:
        """Stop everything that was started; safe to call more than once."""
        monitor, server, admin, state = self.monitor, self._server, self._admin, self.state
        self.monitor, self._server, self._admin, self.state = None, None, None, None
        runner, self.runner = self.runner, None
        presence, self.presence = self.presence, None
        if presence is not None:
            await presence.stop()
        if runner is not None:
            await runner.stop()
        if monitor is not None:
            await monitor.stop()
        if server is not None:
            await server.stop(grace)
        if admin is not None:
            await admin.cleanup()
        if state is not None:
            await state.backend.close()
            log.info("manager stopped")

    async def wait(self) -> None:
        assert self._server is not None
        await self._server.wait_for_termination()


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _bound_port(runner: web.AppRunner) -> int:
    address = runner.addresses[0]
    return int(address[1])

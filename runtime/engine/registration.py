"""Register with the node proxy's NodeService, heartbeat every 3 s, deregister on shutdown."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import grpc

from runtime.api import wruntime_pb2 as pb
from runtime.api.wruntime_pb2_grpc import NodeServiceStub
from runtime.identity import NODE_TLS_NAME, TlsFiles, aio_channel
from runtime.wire import HEARTBEAT_SECS

log = logging.getLogger("wr-engine.registration")
RPC_TIMEOUT_SECS = 5.0
BACKOFF_START, BACKOFF_MAX = 0.5, 5.0
_REFUSED = frozenset((grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED))

HealthyModules = Callable[[], Awaitable[list[pb.ModuleDescriptor]]]
SecretsReceived = Callable[[dict[str, dict[str, str]]], None]


def grpc_target(address: str) -> str:
    """`http://127.0.0.1:9002` or `127.0.0.1:9002` -> `127.0.0.1:9002`."""
    return address.removeprefix("http://").removeprefix("https://").rstrip("/")


class Registrar:
    """Keeps this engine registered while the control plane comes and goes; never blocks serving."""

    def __init__(
        self,
        control_address: str,
        tls: TlsFiles,
        registration: pb.EngineRegistration,
        healthy_modules: HealthyModules,
        on_secrets: SecretsReceived,
        heartbeat_secs: float = HEARTBEAT_SECS,
    ) -> None:
        self.registration = registration
        self._healthy_modules = healthy_modules
        self._on_secrets = on_secrets
        self._heartbeat_secs = heartbeat_secs
        # Mutual TLS with the node certificate; only a node certificate passes as the proxy.
        self._channel = aio_channel(grpc_target(control_address), tls, NODE_TLS_NAME)
        self._stub = NodeServiceStub(self._channel)
        self.registered = asyncio.Event()

    async def _register(self) -> None:
        delay = BACKOFF_START
        while True:
            try:
                resp = await self._stub.RegisterEngine(
                    pb.RegisterEngineRequest(registration=self.registration),
                    timeout=RPC_TIMEOUT_SECS,
                )
                if not resp.accepted:
                    raise RuntimeError("registration was not accepted")
                self._on_secrets({ns.namespace: dict(ns.secrets) for ns in resp.secrets})
                log.info("registered", extra={"engine_id": self.registration.engine_id})
                self.registered.set()
                return
            except (grpc.aio.AioRpcError, RuntimeError) as exc:
                refused = isinstance(exc, grpc.aio.AioRpcError) and exc.code() in _REFUSED
                # A refusal (the manager's reason in the message) needs an operator, not luck.
                log.log(
                    logging.ERROR if refused else logging.WARNING,
                    "registration refused; retrying"
                    if refused
                    else "registration failed; retrying",
                    extra={"error": _short(exc), "retry_in": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    async def run(self) -> None:
        """Register, then heartbeat (the first one right away); re-register if forgotten."""
        await self._register()
        while True:
            try:
                healthy = await self._healthy_modules()
                await self._stub.Heartbeat(
                    pb.HeartbeatRequest(
                        engine_id=self.registration.engine_id, healthy_modules=healthy
                    ),
                    timeout=RPC_TIMEOUT_SECS,
                )
            except grpc.aio.AioRpcError as exc:
                log.warning("heartbeat failed", extra={"error": _short(exc)})
                if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                    self.registered.clear()
                    await self._register()
                    continue
            await asyncio.sleep(self._heartbeat_secs)

    async def deregister(self) -> None:
        try:
            if self.registered.is_set():
                await self._stub.DeregisterEngine(
                    pb.DeregisterEngineRequest(engine_id=self.registration.engine_id),
                    timeout=2.0,
                )
                log.info("deregistered", extra={"engine_id": self.registration.engine_id})
        except grpc.aio.AioRpcError as exc:
            log.warning("deregistration failed", extra={"error": _short(exc)})
        finally:
            await self._channel.close(None)


def _short(exc: BaseException) -> str:
    if isinstance(exc, grpc.aio.AioRpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc)

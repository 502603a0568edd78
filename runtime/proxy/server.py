"""ProxyServer: wires config, listeners, routing-table cache, control plane and admin together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import zlib
from typing import Any

import grpc
from aiohttp import web
from opentelemetry.sdk.trace.export import SpanExporter
from prometheus_client import CollectorRegistry

from runtime.admin import admin_app, start_admin
from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.proxy.breaker import BreakerRegistry
from runtime.proxy.client import EXTERNAL, INTERNAL, PEER, ClientConnection
from runtime.proxy.config import ProxyConfig, split_host_port
from runtime.proxy.egress import EgressPolicy
from runtime.proxy.ingress import IngressRouter
from runtime.proxy.job_gateway import JobGateway
from runtime.proxy.manager_link import ManagerLink
from runtime.proxy.metrics import ProxyMetrics
from runtime.proxy.node_cert import NodeCertificate
from runtime.proxy.node_service import NodeControl
from runtime.proxy.peer_tls import PeerTlsError
from runtime.proxy.router import Router
from runtime.proxy.routing import RoutingIndex
from runtime.proxy.table_cache import RoutingTableCache
from runtime.proxy.tracing import HopTracer
from runtime.proxy.upstream import UpstreamPool
from runtime.telemetry import setup_tracing, shutdown_tracing

log = logging.getLogger("wr-proxy")


class ProxyServer:
    """One wr-proxy: call `start()`, then `stop()`; bound ports are in `ports` (0 picks one)."""

    def __init__(
        self,
        config: ProxyConfig,
        registry: CollectorRegistry | None = None,
        span_exporter: SpanExporter | None = None,
    ) -> None:
        self.config = config
        self.registry = registry or CollectorRegistry()
        self._span_exporter = span_exporter
        self.ports: dict[str, int] = {}
        self._servers: list[asyncio.Server] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._grpc: grpc.aio.Server | None = None
        self._admin: web.AppRunner | None = None
        self._manager: ManagerLink | None = None
        self._jobs: JobGateway | None = None
        self._tracing = False
        self.certificate: NodeCertificate
        self.router: Router
        self.control: NodeControl
        self.table: RoutingTableCache

    async def start(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        certificate = self.certificate = NodeCertificate(cfg.node.tls)
        node = certificate.identity
        if cfg.node.name and cfg.node.name != node.name:
            raise PeerTlsError(
                f"[node] name is {cfg.node.name!r} but the node certificate"
                f" {cfg.node.tls.cert_path} is for {node}; they must agree"
            )
        self.router = self._build_router(loop)
        # Proxies start at different managers (by node id), so the load spreads over them.
        manager = self._manager = ManagerLink(
            cfg.managers, certificate.channel_credentials, zlib.crc32(cfg.node.node_id.encode())
        )
        certificate.on_reload.append(manager.renew)
        self._jobs = JobGateway(manager)
        await self._jobs.start()
        self.router.set_job_gateway(self._jobs.address)
        self.control = NodeControl(manager, cfg.node.peer_address, node, cfg.node.name)
        self.table = RoutingTableCache(
            manager,
            cfg.cache.routing_table_poll_ms / 1000,
            self._install_table,
            self.control.replay,
            on_poll=certificate.check,
            pending=self.control.pending,
        )
        await self.table.poll_once()  # a manager that is not up yet is not fatal
        await self._listen("data", cfg.listen_address, INTERNAL, None)
        address = f"{cfg.node.peer_listen_host}:{cfg.node.peer_port}"
        await self._listen("peer", address, PEER, certificate.server_context)
        if cfg.external is not None:
            await self._listen("external", cfg.external.listen_address, EXTERNAL, None)
        await self._start_control()
        admin_host, admin_port = split_host_port(cfg.admin_address)
        admin = admin_app(self._health, self.registry)
        self._admin = await start_admin(admin, admin_host, admin_port)
        self.ports["admin"] = _bound_port(self._admin)
        self._tasks.append(loop.create_task(self.table.run()))
        self._tasks.append(loop.create_task(self._sweep()))
        log.info("wr-proxy started", extra={"ports": self.ports, "node": cfg.node.node_id})

    def _build_router(self, loop: asyncio.AbstractEventLoop) -> Router:
        cfg = self.config
        # The hop tracer samples requests that arrive without a trace itself (see tracing.py).
        self._tracing = setup_tracing(
            "wr-proxy",
            cfg.tracing.endpoint,
            1.0,
            exporter=self._span_exporter,
            resource_attributes={"wr.node": cfg.node.node_id},  # once per batch, not per span
        )
        metrics = ProxyMetrics(self.registry)
        breakers = BreakerRegistry(
            cfg.circuit_breaker.failure_threshold,
            cfg.circuit_breaker.open_duration_secs,
            metrics.breaker_state,
        )
        return Router(
            node_id=cfg.node.node_id,
            own_peer_address=cfg.node.peer_address,
            request_timeout=cfg.request_timeout_secs,
            header_timeout=cfg.header_timeout_secs,
            idle_timeout=cfg.client_idle_timeout_secs,
            egress=EgressPolicy(cfg.egress.allowed_domains),
            ingress=IngressRouter(cfg.external.route) if cfg.external else None,
            pool=UpstreamPool(self.certificate.client_context, min(cfg.request_timeout_secs, 10.0)),
            breakers=breakers,
            metrics=metrics,
            tracer=HopTracer(self._tracing, cfg.tracing.sample_ratio),
            loop=loop,
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let requests in flight finish (up to grace seconds), then close."""
        for server in self._servers:
            server.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while loop.time() < deadline and any(c.current for c in self.router.connections):
            self.router.close_idle()
            await asyncio.sleep(0.05)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for conn in list(self.router.connections):
            conn.close()
        self.router.pool.close_all()
        if self._grpc is not None:
            await self._grpc.stop(grace=1.0)
        if self._admin is not None:
            await self._admin.cleanup()
        if self._jobs is not None:
            await self._jobs.stop()
        if self._manager is not None:
            await self.control.deregister_all()
            await self._manager.close()
        if self._tracing:
            shutdown_tracing()

    def _install_table(self, table: pb.RoutingTable) -> None:
        breakers = self.router.breakers
        index = RoutingIndex(table, self.config.node.peer_address, breakers)
        breakers.retain(index.breaker_keys, self.router.metrics.breaker_gone)
        if index.invalid_rules:
            log.warning(
                "routing rules ignored (bad address or version)",
                extra={"rules": index.invalid_rules},
            )
        self.router.index = index

    async def _listen(
        self, name: str, address: str, mode: int, context: ssl.SSLContext | None
    ) -> None:
        host, port = split_host_port(address)
        router = self.router
        server = await asyncio.get_running_loop().create_server(
            lambda: ClientConnection(router, mode),
            host,
            port,
            ssl=context,
            # A TLS client must finish its handshake as fast as it must send a head.
            ssl_handshake_timeout=self.config.header_timeout_secs if context else None,
            reuse_address=True,
            backlog=1024,
        )
        self._servers.append(server)
        self.ports[name] = server.sockets[0].getsockname()[1]

    async def _start_control(self) -> None:
        server = grpc.aio.server()
        pb_grpc.add_NodeServiceServicer_to_server(self.control, server)
        host, port = split_host_port(self.config.control_address)
        # Mutual TLS with the node certificate; NodeControl admits only this node's identity.
        bound = server.add_secure_port(
            f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            self.certificate.grpc_server_credentials(),
        )
        if bound == 0:
            raise OSError(f"control_address {self.config.control_address}: cannot bind")
        await server.start()
        self._grpc = server
        self.ports["control"] = bound

    async def _sweep(self) -> None:
        cfg = self.config
        # Every deadline is checked this often, so each fires at most a quarter of itself late.
        timeouts = (cfg.request_timeout_secs, cfg.header_timeout_secs, cfg.client_idle_timeout_secs)
        interval = min(0.25, *(t / 4 for t in timeouts))
        while True:
            await asyncio.sleep(interval)
            self.router.sweep()

    async def _health(self) -> dict[str, Any]:
        index = self.router.index
        return {
            "ok": True,
            "node": self.config.node.node_id,
            "manager_reachable": self.table.reachable,
            "manager_error": self.table.last_error,
            "manager": self._manager.address if self._manager else "",
            "manager_failovers": self._manager.failovers if self._manager else 0,
            "routing_table_version": index.version,
            "rules": index.rule_count,
            "modules": sorted(index.modules()),
            "breakers": self.router.breakers.states(),
            "unsynced_registrations": sorted(self.control.unsynced),
            "node_certificate_not_after": self.certificate.not_after.isoformat(),
            "ports": self.ports,
        }


def _bound_port(runner: web.AppRunner) -> int:
    for site in runner.sites:
        server = getattr(site, "_server", None)
        if server is not None and server.sockets:
            return int(server.sockets[0].getsockname()[1])
    return 0

"""Real parts around a wr-proxy under test: a fake manager, HTTP upstreams, a process wrapper."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import re
import socket
import threading
import time
from collections.abc import Coroutine, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
from aiohttp import web

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import (
    NODE,
    PermissionDenied,
    TlsFiles,
    Unauthenticated,
    authorize,
    server_credentials,
)
from tests.infra.pki import CLUSTER, ClusterPki
from tests.infra.process import ManagedProcess, free_port, wait_until

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[3]


class BackgroundLoop:
    """An asyncio loop on its own thread, so sync tests can host async servers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


# ---- fake manager --------------------------------------------------------------------------
class FakeManager(pb_grpc.ManagerServiceServicer):  # type: ignore[misc]
    """A ManagerService serving a routing table the test controls, recording engine calls.

    Like the real one it serves mutual TLS with a manager certificate and takes calls from
    node certificates of the test cluster only. `refuse` makes RegisterEngine answer
    PERMISSION_DENIED with that message (the manager's authority check saying no)."""

    def __init__(self, pki: ClusterPki, serve_as: TlsFiles | None = None) -> None:
        self.pki = pki
        self._serve_as = serve_as or pki.manager()
        self.port = free_port()
        self.refuse = ""
        self.refused: list[pb.RegisterEngineRequest] = []
        self.caller_certs: list[bytes] = []  # the client certificate of each table poll
        self.table = pb.RoutingTable(version=1)
        self.registrations: list[pb.RegisterEngineRequest] = []
        self.heartbeats: list[pb.HeartbeatRequest] = []
        self.deregistrations: list[str] = []
        self.known_versions: list[int] = []
        self.forget_engines = False
        # namespace -> {key: value}: what RegisterEngine hands out when asked (no grant check)
        self.secrets: dict[str, dict[str, str]] = {}
        self._gone: set[str] = set()  # deregistered and not registered again since
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_ManagerServiceServicer_to_server(self, server)
        if server.add_secure_port(self.address, server_credentials(self._serve_as)) == 0:
            raise RuntimeError(f"fake manager cannot bind {self.address}")
        server.start()
        self._server = server

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait(5)
            self._server = None

    def set_rules(self, rules: Iterable[pb.RoutingRule]) -> int:
        with self._lock:
            version = self.table.version + 1
            self.table = pb.RoutingTable(rules=list(rules), version=version)
            return version

    def _admit(self, context: Any, rpc: str) -> None:
        try:
            authorize(context, CLUSTER, frozenset((NODE,)), f"ManagerService.{rpc}")
        except Unauthenticated as exc:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except PermissionDenied as exc:
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))

    # ManagerService
    def GetRoutingTable(self, request: pb.GetRoutingTableRequest, context: Any) -> Any:
        self._admit(context, "GetRoutingTable")
        with self._lock:
            self.caller_certs.append(context.auth_context()["x509_pem_cert"][0])
            del self.caller_certs[:-5]
            self.known_versions.append(request.known_version)
            if request.known_version and request.known_version == self.table.version:
                return pb.GetRoutingTableResponse()
            return pb.GetRoutingTableResponse(table=self.table)

    def RegisterEngine(self, request: pb.RegisterEngineRequest, context: Any) -> Any:
        self._admit(context, "RegisterEngine")
        if self.refuse:
            with self._lock:
                self.refused.append(request)
            context.abort(grpc.StatusCode.PERMISSION_DENIED, self.refuse)
        with self._lock:
            self.registrations.append(request)
            self._gone.discard(request.registration.engine_id)
            found: dict[str, dict[str, str]] = {}
            for want in request.registration.secrets:
                value = self.secrets.get(want.namespace, {}).get(want.key)
                if value is not None:
                    found.setdefault(want.namespace, {})[want.key] = value
        return pb.RegisterEngineResponse(
            accepted=True,
            secrets=[pb.NamespaceSecrets(namespace=ns, secrets=kv) for ns, kv in found.items()],
        )

    def Heartbeat(self, request: pb.HeartbeatRequest, context: Any) -> Any:
        self._admit(context, "Heartbeat")
        known = {r.registration.engine_id for r in self.registrations} - self._gone
        if self.forget_engines or request.engine_id not in known:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"engine {request.engine_id} is not registered"
            )
        with self._lock:
            self.heartbeats.append(request)
        return pb.HeartbeatResponse()

    def DeregisterEngine(self, request: pb.DeregisterEngineRequest, context: Any) -> Any:
        self._admit(context, "DeregisterEngine")
        with self._lock:
            self.deregistrations.append(request.engine_id)
            self._gone.add(request.engine_id)
        return pb.DeregisterEngineResponse()


def rule(
    engine: Engine | str,
    module: str = "echo",
    namespace: str = "example",
    version: str = "1.0.0",
    healthy: bool = True,
    peer_address: str = "",
    rule_id: str | None = None,
) -> pb.RoutingRule:
    address = engine if isinstance(engine, str) else engine.address
    return pb.RoutingRule(
        rule_id=rule_id or f"{namespace}.{module}@{version}->{address}",
        destination_module=module,
        destination_namespace=namespace,
        destination_version=version,
        engine_id=address,
        engine_address=address,
        healthy=healthy,
        peer_address=peer_address,
    )


# ---- HTTP upstreams standing in for engines --------------------------------------------------
@dataclass
class Engine:
    """An aiohttp server on loopback; /… answers JSON naming itself and echoing what it got."""

    name: str
    port: int = field(default_factory=free_port)
    status: int = 200  # what ordinary requests answer
    failing: set[str] = field(default_factory=set)  # modules (x-wr-module) answered with 500
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)
    generated: int = 0  # bytes /stream/generate has handed to aiohttp so far
    runner: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=1 << 40)
        app.router.add_route("*", "/stream/echo", self._echo)
        app.router.add_route("*", "/stream/count", self._count)
        app.router.add_get("/stream/generate/{size}", self._generate)
        app.router.add_route("*", "/{tail:.*}", self._answer)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen = {
            "engine": self.name,
            "method": request.method,
            "path": request.path_qs,
            "version": f"{request.version.major}.{request.version.minor}",
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body_size": len(body),
        }
        self.requests.append(seen)
        if self.delay:
            await asyncio.sleep(self.delay)
        failing = seen["headers"].get("x-wr-module") in self.failing
        return web.json_response(seen, status=500 if failing else self.status)

    async def _echo(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        if request.version >= (1, 1):  # HTTP/1.0 gets an EOF-delimited body
            response.enable_chunked_encoding()
        await response.prepare(request)
        async for chunk in request.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response

    async def _count(self, request: web.Request) -> web.StreamResponse:
        total = 0
        async for chunk in request.content.iter_any():
            total += len(chunk)
        return web.json_response({"engine": self.name, "received": total})

    async def _generate(self, request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        response = web.StreamResponse(headers={"content-length": str(size)})
        await response.prepare(request)
        block = bytes(range(256)) * 256
        left = size
        while left > 0:
            piece = block[: min(left, len(block))]
            await response.write(piece)  # waits while the reader is slow
            left -= len(piece)
            self.generated += len(piece)
        return response


# ---- the proxy process -----------------------------------------------------------------------
def metric_sample(metrics: str, name: str, **labels: str) -> float | None:
    """Find `name{labels...} value` in Prometheus text; extra labels on the line are fine."""
    for line in metrics.splitlines():
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', label_text))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(value)
    return None


def node_name_of(extra_toml: str) -> str:
    """The `name` in the [node] table of extra_toml, "node-a" when there is none."""
    found = re.search(r'^\[node\]\n(?:[^\[]*\n)?name = "([^"]+)"', extra_toml, re.MULTILINE)
    return found.group(1) if found else "node-a"


class ProxyProcess:
    """wr-proxy started from a proxy.toml the test writes; helpers to talk to it.

    Unless extra_toml says otherwise, the peer listener takes a free loopback port and
    [node.tls] is a copy (in workdir/tls, so a test may swap it) of the pki's certificate
    for the [node] name ("node-a" without one)."""

    def __init__(
        self,
        workdir: Path,
        manager: FakeManager,
        extra_toml: str = "",
        env: dict[str, str] | None = None,
        **top: Any,
    ):
        self.workdir = workdir
        self.port = free_port()
        self.control_port = free_port()
        self.admin_port = free_port()
        self.node = node_name_of(extra_toml)
        self.peer_port = free_port()
        if "peer_port" not in extra_toml:
            node_keys = f'peer_port = {self.peer_port}\npeer_listen_host = "127.0.0.1"\n'
            if "[node]\n" in extra_toml:
                extra_toml = extra_toml.replace("[node]\n", "[node]\n" + node_keys, 1)
            else:
                extra_toml = "[node]\n" + node_keys + extra_toml
        self.tls = self.pki_files(manager.pki)
        if "[node.tls]" not in extra_toml:
            extra_toml += (
                "\n[node.tls]\n"
                f'cert_path = "{self.tls.cert_path}"\n'
                f'key_path = "{self.tls.key_path}"\n'
                f'ca_cert_path = "{self.tls.ca_cert_path}"\n'
            )
        settings = {
            "listen_address": f"127.0.0.1:{self.port}",
            "control_address": f"127.0.0.1:{self.control_port}",
            "admin_address": f"127.0.0.1:{self.admin_port}",
            "manager_address": manager.address,
            **top,
        }
        if "manager_addresses" in top:  # several managers: the list replaces the one address
            del settings["manager_address"]
        lines = [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
        if "[cache]" not in extra_toml:
            lines.append("[cache]\nrouting_table_poll_ms = 100")
        self.config_path = workdir / "proxy.toml"
        self.config_path.write_text("\n".join(lines) + "\n" + extra_toml + "\n")
        self.process = ManagedProcess(
            [str(REPO / ".venv/bin/wr-proxy"), "--config", str(self.config_path)],
            workdir / "wr-proxy.log",
            env=env,
            name="wr-proxy",
        )

    def pki_files(self, pki: ClusterPki) -> TlsFiles:
        source = pki.node(self.node)
        out = self.workdir / "tls"
        out.mkdir(exist_ok=True, mode=0o700)
        for path in (source.cert_path, source.key_path, source.ca_cert_path):
            (out / path.name).write_bytes(path.read_bytes())
        return TlsFiles(
            out / source.cert_path.name, out / source.key_path.name, out / source.ca_cert_path.name
        )

    def control_channel(self, pki: ClusterPki, node: str | None = None) -> grpc.Channel:
        """A channel to the control port as an engine of `node` (this proxy's) opens it."""
        return pki.control_channel(f"127.0.0.1:{self.control_port}", node or self.node)

    def start(self) -> ProxyProcess:
        self.process.start()
        self.process.wait_ready(f"http://127.0.0.1:{self.admin_port}/healthz", deadline_s=20)
        return self

    def stop(self) -> None:
        self.process.stop()

    def start_again(self) -> ProxyProcess:
        """A new wr-proxy process on the same config (ports, node) after stop()."""
        self.process = ManagedProcess(
            [str(REPO / ".venv/bin/wr-proxy"), "--config", str(self.config_path)],
            self.workdir / "wr-proxy-again.log",
            name="wr-proxy",
        )
        return self.start()

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def health(self) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        try:
            conn.request("GET", "/healthz")
            return dict(json.loads(conn.getresponse().read()))
        finally:
            conn.close()

    def metrics(self) -> str:
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=5)
        try:
            conn.request("GET", "/metrics")
            return conn.getresponse().read().decode()
        finally:
            conn.close()

    def sample(self, name: str, **labels: str) -> float | None:
        """The value of one /metrics sample whose labels include `labels`, None if absent."""
        return metric_sample(self.metrics(), name, **labels)

    def wait_table(self, version: int, deadline_s: float = 5.0) -> None:
        wait_until(
            lambda: self.health()["routing_table_version"] >= version,
            deadline_s,
            f"wr-proxy to load routing table version {version}",
        )

    def request(
        self,
        destination: str | None,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        port: int | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=30)
        try:
            all_headers = dict(headers or {})
            if destination is not None:
                all_headers["x-wr-destination"] = destination
            path = (
                "/" + destination.split("/", 3)[3]
                if destination and destination.count("/") >= 3
                else "/"
            )
            conn.request(method, path, body=body, headers=all_headers)
            response = conn.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            conn.close()


def external_toml(port: int, routes: Iterable[tuple[str, str, str]]) -> str:
    """An [external] section: the public listener on port and its (path, namespace, module)
    routes, all methods allowed."""
    lines = ["[external]", f'listen_address = "127.0.0.1:{port}"']
    for path, namespace, module in routes:
        lines += ["[[external.route]]", f'path = "{path}"']
        lines += [f'namespace = "{namespace}"', f'module = "{module}"']
    return "\n".join(lines) + "\n"


def public_request(
    port: int, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on a public (external) listener: status, lower-case headers, body."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def raw_exchange(
    port: int, payload: bytes, until: bytes | None = None, deadline_s: float = 10.0
) -> bytes:
    """Send raw bytes, read until `until` was seen (or the peer closed), return what came."""
    with socket.create_connection(("127.0.0.1", port), timeout=deadline_s) as sock:
        sock.sendall(payload)
        received = b""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
            if until is not None and until in received:
                break
        return received


class Hangup:
    """An upstream that reads a request head and closes the connection without answering."""

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[bytes] = []
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            self.requests.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

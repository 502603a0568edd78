"""The processes bench/engine.py measures, started as `wrctl apply` runs them: engine.toml and
proxy.toml rendered from wrctl's templates for a one-node cluster, node certificates from a
throwaway cluster CA, and a fake manager that turns each engine registration into routes."""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import TlsFiles, server_credentials
from wrctl.bundle.build import _capability_config
from wrctl.config import load_targets
from wrctl.config.component_imports import component_imports
from wrctl.pki import ClusterCA
from wrctl.schemas import compile_schema
from wrctl.templates import render

REPO = Path(__file__).resolve().parents[1]
ECHO_PROTO = REPO / "examples" / "echo" / "schemas" / "echo.proto"


@dataclass(frozen=True)
class BenchModule:
    name: str
    wasm: Path
    schema: bool = False  # the echo schema (protobuf modules)
    env: tuple[tuple[str, str], ...] = ()


class FakeManager(pb_grpc.ManagerServiceServicer):  # type: ignore[misc]
    """Accepts every registration and routes each registered module to its engine."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.table = pb.RoutingTable(version=0)

    def RegisterEngine(self, request: Any, context: Any) -> Any:
        reg = request.registration
        with self._lock:
            rules = [r for r in self.table.rules if r.engine_id != reg.engine_id]
            for m in reg.modules:
                rules.append(
                    pb.RoutingRule(
                        rule_id=f"{reg.engine_id}-{m.namespace}.{m.name}",
                        destination_namespace=m.namespace,
                        destination_module=m.name,
                        destination_version=m.version,
                        engine_address=reg.address,
                        engine_id=reg.engine_id,
                        peer_address=reg.peer_address or "https://127.0.0.1:1",
                        healthy=True,
                    )
                )
            self.table = pb.RoutingTable(rules=rules, version=self.table.version + 1)
        return pb.RegisterEngineResponse(accepted=True)

    def Heartbeat(self, request: Any, context: Any) -> Any:
        return pb.HeartbeatResponse()

    def DeregisterEngine(self, request: Any, context: Any) -> Any:
        return pb.DeregisterEngineResponse()

    def GetRoutingTable(self, request: Any, context: Any) -> Any:
        with self._lock:
            if request.known_version == self.table.version:
                return pb.GetRoutingTableResponse()
            return pb.GetRoutingTableResponse(table=self.table)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """A proxy, a fake manager and one engine; `close()` stops them all."""

    work: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    servers: list[grpc.Server] = field(default_factory=list)
    engine_port: int = 0
    proxy_port: int = 0
    engine: subprocess.Popen[bytes] | None = None
    proxy: subprocess.Popen[bytes] | None = None

    def pids(self) -> list[int]:
        """Every process that serves a request: the engine, its workers and the proxy."""
        out: list[int] = []
        for proc in (self.engine, self.proxy):
            if proc is not None:
                out.append(proc.pid)
                kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
                out += [int(k) for k in kids.read_text().split()] if kids.exists() else []
        return out

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        for server in self.servers:
            server.stop(None)


def _cluster_toml(work: Path, modules: list[BenchModule], ports: dict[str, int]) -> Path:
    lines = ['[cluster]\nname = "bench"\n', '[manager]\nhost = "local"\n']
    lines.append(
        '[[node]]\nname = "local"\nhost = "local"\n'
        + "".join(f"{k}_port = {v}\n" for k, v in ports.items())
    )
    for m in modules:
        schema = f'schema = "{ECHO_PROTO}"\n' if m.schema else ""
        env = ", ".join(f'{k} = "{v}"' for k, v in m.env)
        # grant what the component imports, as its cluster.toml would (the examples trace)
        traced = any(i.startswith("wruntime:tracing/") for i in component_imports(m.wasm))
        lines.append(
            f'[[module]]\nnamespace = "example"\nname = "{m.name}"\nversion = "1.0.0"\n'
            f'component = "{m.wasm}"\n{schema}'
            + (f"env = {{ {env} }}\n" if env else "")
            + ('capabilities = ["tracing"]\n' if traced else "")
        )
    path = work / "cluster.toml"
    path.write_text("\n".join(lines))
    return path


def _node_tls(work: Path) -> tuple[Path, TlsFiles]:
    """(the node's tls dir, the manager's files), issued by a new cluster CA."""
    ca = ClusterCA(work / "pki", "bench")
    tls = work / "local" / "tls"
    tls.mkdir(parents=True)
    node = ca.node_credentials("local", "127.0.0.1")
    for name, data in node.files().items():
        (tls / name).write_bytes(data)
    manager = ca.manager_credentials([])
    for name, data in manager.files().items():
        (work / name).write_bytes(data)
    stem = work / manager.stem
    return tls, TlsFiles(stem.with_suffix(".crt"), stem.with_suffix(".key"), work / "ca.crt")


def _place(text: str, work: Path, release: Path) -> str:
    return (
        text.replace("@WORKDIR@/@TARGET@", str(work / "local"))
        .replace("@WORKDIR@", str(work))
        .replace("@RELEASE@", str(release))
    )


def start_stack(
    work: Path,
    modules: list[BenchModule],
    workers: int | None = None,
    engine_code: Path = REPO,
    ready_path: tuple[str, str] = ("caller", "/run"),
    cache: Path | None = None,
) -> Stack:
    """Render, start and wait until a request through the proxy reaches ready_path's module.

    workers: None keeps the rendered default (one per CPU); engine_code: the checkout whose
    runtime/ the engine runs (an A/B run points it at a worktree of the base commit); cache:
    a compile cache to share (engine.toml's cache_dir is linked to it).
    """
    work.mkdir(parents=True)
    if cache is not None:
        (work / "cache").symlink_to(cache)
    ports = {k: free_port() for k in ("data", "control", "admin", "peer", "engine")}
    targets = load_targets(_cluster_toml(work, modules, ports))
    node = targets.nodes[0]
    release = work / "release"
    (release / "modules").mkdir(parents=True)
    (release / "schemas").mkdir()
    for m in modules:
        (release / "modules" / f"example.{m.name}.wasm").symlink_to(m.wasm)
        if m.schema:
            (release / "schemas" / f"example.{m.name}.binpb").write_bytes(
                compile_schema(ECHO_PROTO)
            )
    _, manager_tls = _node_tls(work)
    manager = FakeManager()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_ManagerServiceServicer_to_server(manager, server)
    manager_port = server.add_secure_port("127.0.0.1:0", server_credentials(manager_tls))
    server.start()
    stack = Stack(work, servers=[server], engine_port=ports["engine"], proxy_port=ports["data"])
    try:
        proxy_toml = render(
            "proxy.toml.j2",
            cluster="bench",
            node=node,
            proxy=targets.config.proxy,
            manager_addresses=[f"127.0.0.1:{manager_port}"],
            advertise_host="127.0.0.1",
            peer_listen_host="127.0.0.1",
        )
        (work / "proxy.toml").write_text(_place(proxy_toml, work, release))
        engine_toml = _place(
            render(
                "engine.toml.j2",
                cluster="bench",
                node=node,
                index=0,
                modules=node.modules,
                capability_config=_capability_config(targets.config, node.modules),
            ),
            work,
            release,
        )
        if workers is not None:
            engine_toml = f"workers = {workers}\n{engine_toml}"
        (work / "engine.toml").write_text(engine_toml)
        stack.proxy = _start(
            stack, [str(REPO / ".venv/bin/wr-proxy"), "--config", str(work / "proxy.toml")], "proxy"
        )
        engine_argv = [sys.executable, "-m", "runtime.engine.cli"]
        stack.engine = _start(
            stack, [*engine_argv, "--config", str(work / "engine.toml")], "engine", engine_code
        )
        _wait_routed(stack, ready_path)
    except BaseException:
        stack.close()
        raise
    return stack


def _start(stack: Stack, argv: list[str], name: str, cwd: Path = REPO) -> subprocess.Popen[bytes]:
    with open(stack.work / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    stack.procs.append(proc)
    return proc


def _wait_routed(stack: Stack, ready: tuple[str, str]) -> None:
    """Poll until the proxy routes a request to the engine (registration and a table poll)."""
    module, path = ready
    deadline = time.monotonic() + 90
    last = ""
    while time.monotonic() < deadline:
        for proc, name in ((stack.engine, "engine"), (stack.proxy, "proxy")):
            if proc is not None and proc.poll() is not None:
                log = (stack.work / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"{name} exited during start-up:\n{log}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", stack.proxy_port, timeout=10)
            conn.request("POST", path, body=b"", headers=destination(module, path))
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == 200:
                return
            last = f"{resp.status} {body[:300]!r}"
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise RuntimeError(f"the proxy did not route to {module} within 90 s: {last}")


def destination(module: str, path: str) -> dict[str, str]:
    """Headers that send a request to example.<module> through the proxy's data port."""
    return {"x-wr-destination": f"http://example.{module}{path}", "x-wr-version": "^1.0"}

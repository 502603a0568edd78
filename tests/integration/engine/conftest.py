"""Fixtures for engine tests: real components (built once, cached by content), a running
wr-engine, and a stand-in node proxy that forwards x-wr-destination back to the engine."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from runtime.identity import TlsFiles
from runtime.wire import CALLER_ENGINE_HEADER
from tests.infra.pki import ClusterPki
from tests.infra.process import ManagedProcess, cache_dir, free_port
from tests.integration.proxy.support import FakeManager

REPO = Path(__file__).resolve().parents[3]
TRACING = ["tracing"]  # the example guests (echo, caller) open spans: grant it where they load


def http_call(
    base: str,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@dataclass
class Engine:
    process: ManagedProcess
    base: str
    config_path: Path

    def call(
        self,
        module: str,
        path: str,
        body: bytes = b"",
        method: str = "POST",
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], bytes]:
        namespace, name = module.split(".")
        all_headers = {"x-wr-module": name, "x-wr-namespace": namespace, **(headers or {})}
        return http_call(self.base, method, path, body, all_headers, timeout)

    def health(self) -> dict[str, Any]:
        status, _, body = http_call(self.base, "GET", "/__health", timeout=5)
        assert status == 200, body
        report: dict[str, Any] = json.loads(body)
        return report

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON records the engine and its workers logged so far."""
        records = []
        for line in self.process.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return records

    def worker_pids(self) -> list[int]:
        pid = self.process.pid
        return [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]

    def scratch_dirs(self) -> list[Path]:
        """The workers' scratch directories (tmpfs): the last argument of each worker."""
        return [
            Path(Path(f"/proc/{kid}/cmdline").read_bytes().split(b"\0")[-2].decode())
            for kid in self.worker_pids()
        ]


class PeakUsage:
    """Samples the bytes under some directories on a thread until stopped; `peak` is the most
    seen at once (how far a flooding guest got before the engine stopped it)."""

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakUsage:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.002):
            self.peak = max(self.peak, sum(_tree_bytes(d) for d in self.dirs))


def _tree_bytes(root: Path) -> int:
    total = 0
    for parent, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(parent, name)).st_size
    return total


def module_toml(name: str, wasm: Path, namespace: str = "example", **extra: Any) -> str:
    lines = [
        "[[module]]",
        f'name = "{name}"',
        f'namespace = "{namespace}"',
        'version = "1.0.0"',
        f'wasm_path = "{wasm}"',
    ]
    env = extra.pop("env", None)
    for key, value in extra.items():
        lines.append(f"{key} = {json.dumps(value)}")
    if env:
        lines.append("[module.env]")
        lines += [f"{k} = {v}" for k, v in env.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def start_engine(tmp_path: Path, pki: ClusterPki) -> Iterator[Callable[..., Engine]]:
    """start_engine(modules_toml, workers=1, proxy=None, control=None, otlp=None, tls=None)
    -> Engine; with `control`, [node.tls] is `tls`, by default the pki's node-test certificate."""
    started: list[ManagedProcess] = []

    def start(
        modules: str,
        workers: int = 1,
        proxy: str | None = None,
        control: str | None = None,
        wait: bool = True,
        otlp: str | None = None,
        tls: TlsFiles | None = None,
    ) -> Engine:
        port = free_port()
        tracing = f'otlp_endpoint = "{otlp}"\n' if otlp else ""
        node = [f'proxy_address = "{proxy or "http://127.0.0.1:9"}"', 'name = "node-test"']
        if control:
            node.append(f'control_address = "{control}"')
            files = tls or pki.node("node-test")
            node += [
                "[node.tls]",
                f'cert_path = "{files.cert_path}"',
                f'key_path = "{files.key_path}"',
                f'ca_cert_path = "{files.ca_cert_path}"',
            ]
        config = tmp_path / f"engine-{port}.toml"
        config.write_text(
            f'listen_address = "127.0.0.1:{port}"\nworkers = {workers}\n{tracing}'
            f'cache_dir = "{cache_dir() / "components"}"\n\n[node]\n'
            + "\n".join(node)
            + "\n\n"
            + modules
        )
        proc = ManagedProcess(
            [sys.executable, "-m", "runtime.engine.cli", "--config", config],
            tmp_path / f"engine-{port}.log",
            name="wr-engine",
            cwd=REPO,
        )
        proc.start()
        started.append(proc)
        base = f"http://127.0.0.1:{port}"
        if wait:
            proc.wait_ready(f"{base}/__health", deadline_s=60)
        return Engine(proc, base, config)

    yield start
    for proc in started:
        proc.stop()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body_size: int


@dataclass
class StubProxy:
    """Stands in for wr-proxy: forwards module calls to the engine, answers external URLs
    (`*.example.com`) by echoing the body, or with N bytes for `?reply=N`."""

    engine_base: str = ""
    seen: list[Seen] = field(default_factory=list)
    address: str = ""


@pytest.fixture
def stub_proxy() -> Iterator[StubProxy]:
    state = StubProxy()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_: Any) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            state.seen.append(Seen(self.command, self.path, headers, len(body)))
            dest = urlsplit(headers.get("x-wr-destination", ""))
            namespace, _, module = (dest.hostname or "").partition(".")
            if dest.hostname and dest.hostname.endswith("example.com"):
                # an "external" echo; `?reply=N` answers with N bytes instead
                size = parse_qs(dest.query).get("reply")
                data = b"r" * int(size[0]) if size else body
                status, reply_headers = 200, {}
            else:
                status, reply_headers, data = http_call(
                    state.engine_base,
                    self.command,
                    self.path,
                    body,
                    {
                        "x-wr-module": module,
                        "x-wr-namespace": namespace,
                        "traceparent": headers.get("traceparent", ""),
                        # the real proxy forwards the x-wr-* headers it does not own
                        **{k: v for k, v in headers.items() if k == CALLER_ENGINE_HEADER},
                    },
                )
            self.send_response(status)
            for k, v in reply_headers.items():
                if k not in {"content-length", "transfer-encoding", "connection", "date", "server"}:
                    self.send_header(k, v)
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.address = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_manager(pki: ClusterPki) -> Iterator[FakeManager]:
    """The proxy tests' FakeManager (TLS, the routing table a test sets) for a real proxy."""
    manager = FakeManager(pki)
    manager.start()
    yield manager
    manager.stop()

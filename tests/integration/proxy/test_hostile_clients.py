"""Hostile clients on every listener: slow heads, idle connections, huge request lines and
headers, while good traffic goes on with its usual latency."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.infra.pki import ClusterPki
from tests.infra.process import free_port, wait_until
from tests.integration.proxy.support import (
    Engine,
    FakeManager,
    ProxyProcess,
    external_toml,
    rule,
)

HEADER_TIMEOUT = 1.0
IDLE_TIMEOUT = 1.0
# How late a deadline may fire here: the proxy checks four times a second, and this machine
# may be busy with other tests.
SLACK = 1.0
GOOD_LATENCY = 1.0  # what a good request may take while an attack runs (usually ~2 ms)
DEST = b"x-wr-destination: http://example.echo/pkg.Echo/Say\r\n"
GOOD_REQUEST = b"GET /pkg.Echo/Say HTTP/1.1\r\nhost: x\r\n" + DEST + b"\r\n"
LISTENERS = ("data", "external", "peer")


@dataclass
class Guarded:
    """A wr-proxy with short header and idle timeouts on all three HTTP listeners."""

    proxy: ProxyProcess
    ports: dict[str, int]
    client_tls: ssl.SSLContext

    def connect(self, listener: str) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.ports[listener]), timeout=10)
        if listener == "peer":
            return self.client_tls.wrap_socket(sock, server_hostname="127.0.0.1")
        return sock


@pytest.fixture(scope="module")
def guarded(
    tmp_path_factory: pytest.TempPathFactory,
    manager: FakeManager,
    engines: list[Engine],
    pki: ClusterPki,
) -> Iterator[Guarded]:
    workdir = tmp_path_factory.mktemp("guarded-proxy")
    peer, public = free_port(), free_port()
    extra = f"""
[node]
name = "node-a"
proxy_address = "http://127.0.0.1:9001"
peer_port = {peer}
peer_listen_host = "127.0.0.1"
"""
    extra += external_toml(public, [("/pkg.Echo/Say", "example", "echo")])
    proxy = ProxyProcess(
        workdir,
        manager,
        extra,
        header_timeout_secs=HEADER_TIMEOUT,
        client_idle_timeout_secs=IDLE_TIMEOUT,
    )
    proxy.start()
    client = pki.node("node-b")
    client_tls = ssl.create_default_context(cafile=str(client.ca_cert_path))
    client_tls.load_cert_chain(str(client.cert_path), str(client.key_path))
    try:
        yield Guarded(proxy, {"data": proxy.port, "external": public, "peer": peer}, client_tls)
    finally:
        proxy.stop()


@pytest.fixture
def routed(guarded: Guarded, manager: FakeManager, fresh_engines: list[Engine]) -> Guarded:
    guarded.proxy.wait_table(manager.set_rules([rule(fresh_engines[0])]))
    return guarded


def _read_to_close(sock: socket.socket, deadline_s: float) -> tuple[bytes, bool]:
    """What the peer sends until it closes; whether it closed before deadline_s passed."""
    received = b""
    end = time.monotonic() + deadline_s
    while (left := end - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:  # reset, or TLS cut short: closed all the same
            return received, True
        if not chunk:
            return received, True
        received += chunk
    return received, False


def _trickle(sock: socket.socket, head: bytes, every_s: float, deadline_s: float) -> bytes:
    """Send head one byte every every_s seconds (a slow client), until the proxy answers or
    deadline_s passes; return the answer."""
    end = time.monotonic() + deadline_s
    for byte in head:
        if time.monotonic() > end:
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
        sock.settimeout(every_s)  # the wait for an answer paces the bytes
        try:
            answer = sock.recv(65536)
        except TimeoutError:
            continue
        return answer
    return b""


@pytest.mark.parametrize("listener", LISTENERS)
def test_slow_head_gets_408_and_is_closed_within_the_header_timeout(
    routed: Guarded, listener: str
) -> None:
    with routed.connect(listener) as sock:
        started = time.monotonic()
        answer = _trickle(sock, GOOD_REQUEST, 0.2, HEADER_TIMEOUT + 4)
        rest, closed = _read_to_close(sock, 3)
        elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"not received within 1 s" in answer + rest
    assert b"connection: close" in answer
    assert closed and elapsed < HEADER_TIMEOUT + SLACK, elapsed


@pytest.mark.parametrize("listener", LISTENERS)
def test_idle_keep_alive_connection_is_closed(routed: Guarded, listener: str) -> None:
    with routed.connect(listener) as sock:
        sock.sendall(GOOD_REQUEST)
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        rest, closed = _read_to_close(sock, IDLE_TIMEOUT + 4)
    assert closed and rest == b""  # closed without a word: no request was waiting
    assert time.monotonic() - started < IDLE_TIMEOUT + SLACK


@pytest.mark.parametrize("listener", LISTENERS)
def test_silent_new_connection_is_closed_within_the_header_timeout(
    routed: Guarded, listener: str
) -> None:
    """Nothing sent (on the peer port: not even a TLS handshake): the proxy hangs up."""
    port = routed.ports[listener]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()
        rest, closed = _read_to_close(sock, HEADER_TIMEOUT + 4)
    assert closed and rest == b""
    assert time.monotonic() - started < HEADER_TIMEOUT + SLACK


# ---- huge heads, with good traffic alongside ------------------------------------------------
@dataclass
class GoodTraffic:
    """Keep-alive requests in a loop on a thread, each one's latency recorded."""

    port: int
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"x-wr-destination": "http://example.echo/pkg.Echo/Say"}
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                conn.request("GET", "/pkg.Echo/Say", headers=headers)
                response = conn.getresponse()
                response.read()
                self.latencies.append(time.monotonic() - started)
                if response.status != 200:
                    self.failures.append(f"status {response.status}")
        except (OSError, http.client.HTTPException) as exc:
            self.failures.append(repr(exc))
        finally:
            conn.close()

    def during(self, attack: Callable[[], None]) -> None:
        """Run attack while good requests go on before, during and after it."""
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        try:
            wait_until(lambda: len(self.latencies) >= 5, 10, "good traffic to flow")
            attack()
            after = len(self.latencies) + 5
            wait_until(lambda: len(self.latencies) >= after, 10, "good traffic after the attack")
        finally:
            self._stop.set()
            thread.join(15)


def _flood(port: int, payload: bytes) -> tuple[bytes, float]:
    """Send payload (tens of MiB) while reading the answer; the answer and when it came."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        started = time.monotonic()

        def send() -> None:
            with contextlib.suppress(OSError):  # refused part-way: the proxy stopped reading
                sock.sendall(payload)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        answer, _ = _read_to_close(sock, 10)
        elapsed = time.monotonic() - started
        sender.join(10)
    return answer, elapsed


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_huge_request_line_and_header_are_refused_at_once_and_others_keep_going(
    routed: Guarded,
) -> None:
    proxy = routed.proxy
    pid = proxy.process.pid
    mib32 = b"a" * (32 << 20)
    attacks = {
        "url": b"GET /" + mib32 + b" HTTP/1.1\r\nhost: x\r\n\r\n",
        "header": b"GET / HTTP/1.1\r\nhost: x\r\nx-big: " + mib32 + b"\r\n\r\n",
        "many headers": b"GET / HTTP/1.1\r\n" + b"x-h: a\r\n" * (4 << 20) + b"\r\n",
    }
    answers: dict[str, tuple[bytes, float]] = {}
    good = GoodTraffic(proxy.port)
    rss, cpu = _rss_bytes(pid), _cpu_seconds(pid)

    def attack() -> None:
        for name, payload in attacks.items():
            answers[name] = _flood(routed.ports["data"], payload)

    good.during(attack)
    cpu = _cpu_seconds(pid) - cpu
    assert answers["url"][0].startswith(b"HTTP/1.1 414"), answers["url"][0][:200]
    assert b"request URL exceeds 65536 bytes" in answers["url"][0]
    for name in ("header", "many headers"):
        assert answers[name][0].startswith(b"HTTP/1.1 431"), (name, answers[name][0][:200])
    assert all(elapsed < 2.0 for _, elapsed in answers.values()), answers
    assert not good.failures, good.failures
    assert max(good.latencies) < GOOD_LATENCY, sorted(good.latencies)[-5:]
    assert cpu < 1.5, f"the proxy spent {cpu:.2f} s of CPU on three refusals"
    assert _rss_bytes(pid) - rss < 16 << 20, "the proxy kept what the attackers sent"


def test_slow_clients_do_not_hold_up_good_traffic(routed: Guarded) -> None:
    good = GoodTraffic(routed.proxy.port)
    results: list[bytes] = []

    def attack() -> None:
        def slow(listener: str) -> None:
            with routed.connect(listener) as sock:
                results.append(_trickle(sock, GOOD_REQUEST, 0.2, HEADER_TIMEOUT + 4))

        threads = [threading.Thread(target=slow, args=(n,)) for n in LISTENERS * 10]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HEADER_TIMEOUT + 10)

    good.during(attack)
    assert len(results) == 30 and all(r.startswith(b"HTTP/1.1 408") for r in results), results
    assert not good.failures, good.failures
    assert max(good.latencies) < GOOD_LATENCY, sorted(good.latencies)[-5:]

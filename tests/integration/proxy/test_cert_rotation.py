"""Node certificate rotation: new files on disk are taken up in place by the peer listener, the
control port and the manager channel, while a request stream that is already flowing goes on."""

from __future__ import annotations

import os
import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import TlsFiles
from tests.infra.pki import ClusterPki
from tests.infra.process import free_port, wait_until
from tests.integration.proxy.support import (
    BackgroundLoop,
    Engine,
    FakeManager,
    ProxyProcess,
    rule,
)

STREAM = b"x-wr-destination: http://example.echo/stream/echo\r\n"


def _der(pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


def _client_context(files: TlsFiles, alpn: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(files.ca_cert_path))
    context.check_hostname = False  # the handshake's certificate is what is looked at here
    context.load_cert_chain(str(files.cert_path), str(files.key_path))
    if alpn:
        context.set_alpn_protocols([alpn])
    return context


def _presented(port: int, context: ssl.SSLContext) -> bytes:
    """The certificate (DER) a new TLS handshake with 127.0.0.1:port presents."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


def _read_until(sock: ssl.SSLSocket, marker: bytes, deadline_s: float = 10.0) -> bytes:
    received = b""
    end = time.monotonic() + deadline_s
    while marker not in received:
        assert time.monotonic() < end, f"no {marker!r} within {deadline_s}s: {received!r}"
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before {marker!r}: {received!r}"
        received += chunk
    return received


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def test_rotated_certificate_is_taken_up_without_dropping_traffic(
    pki: ClusterPki,
    manager: FakeManager,
    fresh_engines: list[Engine],
    start_proxy: Callable[..., ProxyProcess],
) -> None:
    proxy = start_proxy(extra_toml='[node]\nname = "node-a"')
    proxy.wait_table(manager.set_rules([rule(fresh_engines[0])]))
    old_pem = proxy.tls.cert_path.read_bytes()
    peer_client = _client_context(pki.node("node-b"))
    engine_client = _client_context(pki.node("node-a"), alpn="h2")
    assert _presented(proxy.peer_port, peer_client) == _der(old_pem)
    assert _presented(proxy.control_port, engine_client) == _der(old_pem)

    # A stream through the peer listener, flowing before the rotation...
    raw = socket.create_connection(("127.0.0.1", proxy.peer_port), timeout=10)
    stream = peer_client.wrap_socket(raw)
    try:
        stream.sendall(
            b"POST /stream/echo HTTP/1.1\r\nhost: x\r\n"
            + STREAM
            + b"transfer-encoding: chunked\r\n\r\n"
            + _chunk(b"before-rotation")
        )
        assert b"before-rotation" in _read_until(stream, b"before-rotation")

        # ...while the files are swapped for a newly issued certificate (one file at a time,
        # as a copy would: the proxy must wait for a pair that matches).
        new_pem, new_key = pki.renewed(proxy.tls)
        for path, data in ((proxy.tls.key_path, new_key), (proxy.tls.cert_path, new_pem)):
            scratch = path.with_suffix(".new")
            scratch.write_bytes(data)
            os.replace(scratch, path)

        new = _der(new_pem)
        wait_until(
            lambda: _presented(proxy.peer_port, peer_client) == new,
            10,
            "new peer handshakes to present the new certificate",
        )
        wait_until(
            lambda: _presented(proxy.control_port, engine_client) == new,
            10,
            "new control-port handshakes to present the new certificate",
        )
        wait_until(
            lambda: manager.caller_certs and _der(manager.caller_certs[-1]) == new,
            10,
            "the manager to see the new certificate on the proxy's polls",
        )

        # The stream that was up all along still flows, and finishes cleanly.
        stream.sendall(_chunk(b"after-rotation"))
        assert b"after-rotation" in _read_until(stream, b"after-rotation")
        stream.sendall(b"0\r\n\r\n")
        _read_until(stream, b"0\r\n\r\n")
    finally:
        stream.close()

    # Engines reach the control port, and through the renewed channel the manager.
    with proxy.control_channel(pki) as channel:
        with pytest.raises(grpc.RpcError) as raised:
            pb_grpc.NodeServiceStub(channel).Heartbeat(
                pb.HeartbeatRequest(engine_id="never-registered"), timeout=5
            )
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    expiry = x509.load_pem_x509_certificate(new_pem).not_valid_after_utc.isoformat()
    assert proxy.health()["node_certificate_not_after"] == expiry
    reloaded = [line for line in proxy.log().splitlines() if "node certificate reloaded" in line]
    assert len(reloaded) == 1 and expiry in reloaded[0]
    assert proxy.process.running


def test_a_certificate_of_another_node_is_not_taken_up(
    pki: ClusterPki,
    manager: FakeManager,
    start_proxy: Callable[..., ProxyProcess],
    tmp_path: Path,
) -> None:
    proxy = start_proxy(extra_toml='[node]\nname = "node-a"')
    old = _der(proxy.tls.cert_path.read_bytes())
    other = pki.node("node-b")
    for source, target in (
        (other.key_path, proxy.tls.key_path),
        (other.cert_path, proxy.tls.cert_path),
    ):
        target.write_bytes(source.read_bytes())
    wait_until(
        lambda: "node certificate not reloaded" in proxy.log() and "node-b" in proxy.log(),
        10,
        "the proxy to refuse the other node's certificate",
    )
    assert _presented(proxy.peer_port, _client_context(pki.node("node-c"))) == old
    assert proxy.health()["ok"]


def test_forwarding_to_peers_presents_the_rotated_certificate(
    pki: ClusterPki,
    manager: FakeManager,
    start_proxy: Callable[..., ProxyProcess],
    background: BackgroundLoop,
) -> None:
    """A stand-in peer (node-b's certificate, client certificates required) records what the
    proxy presents on each new connection; it closes every connection after answering."""
    seen: list[bytes] = []
    port = free_port()
    server_tls = ssl.create_default_context(
        ssl.Purpose.CLIENT_AUTH, cafile=str(pki.node("node-b").ca_cert_path)
    )
    server_tls.load_cert_chain(str(pki.node("node-b").cert_path), str(pki.node("node-b").key_path))
    server_tls.verify_mode = ssl.CERT_REQUIRED

    async def answer(request: web.Request) -> web.StreamResponse:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        seen.append(ssl_object.getpeercert(binary_form=True) if ssl_object else b"")
        response = web.json_response({"ok": True})
        response.force_close()
        return response

    async def serve() -> web.AppRunner:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_tls).start()
        return runner

    runner = background.run(serve())
    try:
        proxy = start_proxy(extra_toml='[node]\nname = "node-a"')
        peer = f"https://127.0.0.1:{port}"
        proxy.wait_table(manager.set_rules([rule("http://127.0.0.1:1", peer_address=peer)]))
        assert proxy.request("http://example.echo/x")[0] == 200
        assert seen[-1] == _der(proxy.tls.cert_path.read_bytes())

        new_pem, new_key = pki.renewed(proxy.tls)
        for path, data in ((proxy.tls.key_path, new_key), (proxy.tls.cert_path, new_pem)):
            scratch = path.with_suffix(".new")
            scratch.write_bytes(data)
            os.replace(scratch, path)

        def forwarded_with_new() -> bool:
            assert proxy.request("http://example.echo/x")[0] == 200
            return seen[-1] == _der(new_pem)

        wait_until(forwarded_with_new, 10, "forwarded requests to present the new certificate")
    finally:
        background.run(runner.cleanup())

"""Egress allowlist for non-cluster hosts, and the external ingress listener with its routes."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from tests.infra.process import free_port
from tests.integration.proxy.certs import ClusterCA
from tests.integration.proxy.support import (
    BackgroundLoop,
    Engine,
    FakeManager,
    ProxyProcess,
    public_request,
    rule,
)


def test_egress_allowlist(
    manager: FakeManager, fresh_engines: list[Engine], start_proxy: Callable[..., ProxyProcess]
) -> None:
    outside = fresh_engines[1]  # stands in for an external API reached as "localhost"
    proxy = start_proxy(extra_toml='[egress]\nallowed_domains = ["localhost", "*.example.com"]')
    proxy.wait_table(manager.set_rules([rule(fresh_engines[0])]))
    status, _, body = proxy.request(
        f"http://localhost:{outside.port}/v1/things?q=1",
        headers={"x-wr-source": "caller", "x-wr-secret-ish": "no"},
    )
    assert status == 200, body
    seen = json.loads(body)
    assert seen["path"] == "/v1/things?q=1"
    assert seen["headers"]["host"] == f"localhost:{outside.port}"
    assert not [h for h in seen["headers"] if h.startswith("x-wr-")]  # nothing internal leaks

    for refused in ("http://a.b.example.com/x", "https://example.com/x", "http://api.other.org/"):
        status, _, body = proxy.request(refused)
        assert status == 403, (refused, body)
        assert b"not in [egress] allowed_domains" in body


def test_https_egress_verifies_the_server(
    tmp_path: Path,
    manager: FakeManager,
    fresh_engines: list[Engine],
    start_proxy: Callable[..., ProxyProcess],
    background: BackgroundLoop,
) -> None:
    ca = ClusterCA(tmp_path)  # stands in for a public CA: the proxy trusts it via SSL_CERT_FILE
    cert, key = ca.issue("api")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    port = free_port()

    async def serve() -> web.AppRunner:
        async def answer(request: web.Request) -> web.Response:
            return web.json_response({"path": request.path, "secure": request.secure})

        app = web.Application()
        app.router.add_get("/{tail:.*}", answer)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
        return runner

    runner = background.run(serve())
    try:
        proxy = start_proxy(
            extra_toml='[egress]\nallowed_domains = ["localhost"]',
            env={"SSL_CERT_FILE": str(ca.ca_path)},
        )
        proxy.wait_table(manager.set_rules([rule(fresh_engines[0])]))
        status, _, body = proxy.request(f"https://localhost:{port}/v2/ping")
        assert status == 200, body
        assert json.loads(body) == {"path": "/v2/ping", "secure": True}
        # Without trusting that CA the certificate is refused: no silent plain connection.
        strict = start_proxy(extra_toml='[egress]\nallowed_domains = ["localhost"]')
        strict.wait_table(manager.set_rules([rule(fresh_engines[0])]))
        status, _, body = strict.request(f"https://localhost:{port}/v2/ping")
        assert status == 502 and b"CERTIFICATE_VERIFY_FAILED" in body
    finally:
        background.run(runner.cleanup())


def test_egress_refused_without_allowlist(shared_proxy: ProxyProcess) -> None:
    status, _, body = shared_proxy.request("https://api.github.com/repos")
    assert status == 403 and b"no [egress] allowed_domains" in body


def test_external_routes_strip_wr_headers(
    manager: FakeManager, fresh_engines: list[Engine], start_proxy: Callable[..., ProxyProcess]
) -> None:
    public = free_port()
    routes = f"""
[external]
listen_address = "127.0.0.1:{public}"

[[external.route]]
path = "/items"
methods = ["GET", "post"]
module = "inventory"
namespace = "shop"

[[external.route]]
path = "/items/{{id}}"
methods = ["GET"]
module = "inventory"
namespace = "shop"
"""
    proxy = start_proxy(extra_toml=routes)
    proxy.wait_table(
        manager.set_rules(
            [rule(fresh_engines[0], module="inventory", namespace="shop"), rule(fresh_engines[1])]
        )
    )
    status, _, body = proxy.request(
        None,
        headers={"x-wr-destination": "http://example.echo/steal", "x-wr-version": "9.9.9"},
        port=public,
    )
    assert status == 404  # the public listener only knows its routes ("/")
    conn_headers = {"x-wr-destination": "http://example.echo/x", "x-wr-via-proxy": "node-a"}
    for path, method in (("/items", "POST"), ("/items/42?full=1", "GET")):
        status, _, body = public_request(public, method, path, conn_headers)
        assert status == 200, (path, body)
        seen = json.loads(body)
        assert seen["engine"] == "engine-0"  # the route's module, not the spoofed destination
        assert seen["path"] == path
        assert seen["headers"]["x-wr-module"] == "inventory"
        assert seen["headers"]["x-wr-namespace"] == "shop"
    status, headers, _ = public_request(public, "DELETE", "/items/42", {})
    assert status == 405 and headers["allow"] == "GET"

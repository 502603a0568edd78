"""x-wr-destination parsing."""

from __future__ import annotations

import pytest

from runtime.proxy.destination import BadDestination, DestinationParser


def test_module_destination() -> None:
    dest = DestinationParser().parse(b"http://shop.inventory/inv.Svc/Get?x=1")
    assert (dest.namespace, dest.module, dest.path) == ("shop", "inventory", b"/inv.Svc/Get?x=1")
    assert dest.authority == b"shop.inventory" and dest.label == "shop.inventory"


@pytest.mark.parametrize(
    ("raw", "host", "port", "tls"),
    [
        (b"https://api.example.com/v1", "api.example.com", 443, True),
        (b"http://localhost:8080/", "localhost", 8080, False),
        (b"https://shop.inventory/x", "shop.inventory", 443, True),  # https is never a module
        (b"http://shop.inventory:81/x", "shop.inventory", 81, False),  # nor is a port
        (b"http://[::1]:9000/x", "::1", 9000, False),
    ],
)
def test_external_destinations(raw: bytes, host: str, port: int, tls: bool) -> None:
    dest = DestinationParser().parse(raw)
    assert not dest.is_module
    assert (dest.host, dest.port, dest.tls) == (host, port, tls)


def test_no_path_means_root() -> None:
    assert DestinationParser().parse(b"http://a.b").path == b"/"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"shop.inventory/x",
        b"ftp://a.b/",
        b"http:///x",
        b"http://user@a.b/",
        b"http://a_b.c/",
        b"http://a.b:99999/",
        b"http://a.b:x/",
    ],
)
def test_malformed(raw: bytes) -> None:
    parser = DestinationParser()
    for _ in range(2):  # the cached answer is the same error
        with pytest.raises(BadDestination, match="x-wr-destination"):
            parser.parse(raw)

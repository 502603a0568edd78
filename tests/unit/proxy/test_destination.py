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


@pytest.mark.parametrize("path", [b"/a b", b"/a\tb", b"/\x00", b"/\x7f", b"/caf\xc3\xa9"])
def test_a_path_that_cannot_be_a_request_target(path: bytes) -> None:
    with pytest.raises(BadDestination, match="percent-encode"):
        DestinationParser().parse(b"http://shop.inventory" + path)


def test_printable_paths_and_queries_pass_unchanged() -> None:
    raw = b"http://shop.inventory/a%20b/{x}|y?q=1&r=[2]#frag"
    assert DestinationParser().parse(raw).path == b"/a%20b/{x}|y?q=1&r=[2]"


@pytest.mark.parametrize(
    ("raw", "single"),
    [
        (b"http://some-service/rpc", True),
        (b"https://localhost:8443/x", True),
        (b"http://shop.inventory/x", False),
        (b"http://api.example.com/x", False),
        (b"http://10.0.0.1/x", False),
        (b"http://[::1]:9000/x", False),
    ],
)
def test_single_label_hosts(raw: bytes, single: bool) -> None:
    assert DestinationParser().parse(raw).is_single_label is single

"""Module selection: proxy headers first, then /{namespace}.{module}/rest paths."""

from __future__ import annotations

import pytest

from runtime.engine.routing import select_module


@pytest.mark.parametrize(
    ("headers", "path", "expected"),
    [
        (
            {"x-wr-module": "echo", "x-wr-namespace": "example"},
            "/echo.EchoService/Echo?a=1",
            ("example.echo", "/echo.EchoService/Echo?a=1"),
        ),
        ({}, "/example.echo/echo.EchoService/Echo", ("example.echo", "/echo.EchoService/Echo")),
        ({}, "/example.echo/run?x=1", ("example.echo", "/run?x=1")),
        ({}, "/example.echo", ("example.echo", "/")),
        ({}, "/example.echo?x=1", ("example.echo", "/?x=1")),
        ({}, "/__health", (None, "/__health")),
        ({}, "/a.b.c/x", (None, "/a.b.c/x")),
        ({"x-wr-module": "echo"}, "/plain", (None, "/plain")),
    ],
)
def test_select_module(
    headers: dict[str, str], path: str, expected: tuple[str | None, str]
) -> None:
    assert select_module(headers, path) == expected

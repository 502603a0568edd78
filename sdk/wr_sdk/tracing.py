"""Spans from a module, in the request's trace (the `tracing` capability).

Grant it in cluster.toml (`capabilities = ["tracing"]` on the module) and build with it
(`capabilities = ["tracing"]` in guest.toml, or `wrctl build --capability tracing`).

    from wr_sdk import tracing

    with tracing.span("load-order", order_id=42) as span:
        order = load(42)
        span.set("order.lines", len(order.lines))
        span.event("validated", rules=3)

A span opened while another is open is its child; the first is a child of the engine's span
for the request. Outbound calls made while a span is open are its children too, so a called
module's spans nest under it. An exception leaving the `with` block marks the span failed.
A request may hold at most 1024 spans open at once (the engine's `[limits] max_spans`):
one more fails the request.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from wr_sdk._host import GuestOnly

try:
    from wit_world.imports import span as _span
except ImportError:  # a world without the tracing capability, or not in a guest at all
    _span = None

Value = str | bool | int | float


def _value(value: Value) -> Any:
    """The WIT attribute-value for a Python value (anything else is sent as its str())."""
    assert _span is not None
    if isinstance(value, bool):
        return _span.AttributeValue_Boolean(value)
    if isinstance(value, int):
        return _span.AttributeValue_Signed(value)
    if isinstance(value, float):
        return _span.AttributeValue_Float(value)
    return _span.AttributeValue_Text(value if isinstance(value, str) else str(value))


def _attrs(attrs: dict[str, Value]) -> list[tuple[str, Any]]:
    return [(k, _value(v)) for k, v in attrs.items()] if attrs else []


def _need_tracing() -> Any:
    if _span is None:
        raise GuestOnly(
            "wr_sdk.tracing needs a component built with the tracing capability "
            '(capabilities = ["tracing"] in guest.toml)'
        )
    return _span


class Span:
    """An open span; ends when its `with` block does (or at close()). Attribute keys follow
    OpenTelemetry's dotted names, e.g. "order.id"."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def _live(self) -> Any:
        if self._handle is None:
            raise RuntimeError("this span is closed")
        return self._handle

    def set(self, key: str, value: Value) -> None:
        """Set one attribute: a str, bool, int or float."""
        self._live().set_attribute(key, _value(value))

    def event(self, name: str, **attrs: Value) -> None:
        """Record a point-in-time event with optional attributes."""
        self._live().record_event(name, _attrs(attrs))

    def error(self, message: str) -> None:
        """Mark the span as failed."""
        self._live().set_error(message)

    def close(self) -> None:
        """End the span now (idempotent); spans still open end with the request."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.__exit__(None, None, None)

    def __enter__(self) -> Span:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and self._handle is not None:
            self._handle.set_error(f"{type(exc).__name__}: {exc}")
        self.close()


def span(name: str, **attrs: Value) -> Span:
    """Open a span named `name` with initial attributes; use it in a `with` block."""
    return Span(_need_tracing().start(name, _attrs(attrs)))


def root_span(name: str, **attrs: Value) -> Span:
    """Open a span in a new trace of its own (outbound calls made under it join that trace)."""
    return Span(_need_tracing().start_root(name, _attrs(attrs)))

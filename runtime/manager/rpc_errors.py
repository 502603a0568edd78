"""The one place manager errors become gRPC status codes, with the caller's authorization,
metrics and a span per call."""

from __future__ import annotations

import contextvars
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import grpc
from opentelemetry import propagate, trace

from runtime.identity import Identity, PermissionDenied, Unauthenticated, authorize
from runtime.manager.errors import (
    FailedPrecondition,
    InvalidArgument,
    ManagerError,
    NotFound,
    Unimplemented,
)
from runtime.manager.metrics import ManagerMetrics
from runtime.manager.secretbox import SecretDecryptError
from runtime.manager.store import StoreUnavailable

log = logging.getLogger("runtime.manager.rpc")
_tracer = trace.get_tracer("wr-manager")

_CODES: dict[type[Exception], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    StoreUnavailable: grpc.StatusCode.UNAVAILABLE,
    SecretDecryptError: grpc.StatusCode.INTERNAL,
    Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
}
_REFUSALS = (Unauthenticated, PermissionDenied)

# The authorized caller of the RPC running in this task (grpc.aio runs each call in its own).
_CALLER: contextvars.ContextVar[Identity] = contextvars.ContextVar("manager_caller")

Handler = Callable[[Any, Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
H = TypeVar("H", bound=Handler)


class Servicer:
    metrics: ManagerMetrics
    cluster: str  # "" accepts callers of any cluster


def status_of(exc: Exception) -> tuple[grpc.StatusCode, str]:
    for kind, code in _CODES.items():
        if isinstance(exc, kind):
            return code, str(exc)
    return grpc.StatusCode.INTERNAL, "internal error (see the manager log)"


def current_caller() -> Identity:
    """The identity `rpc` authorized for the call being handled."""
    return _CALLER.get()


def rpc(*roles: str) -> Callable[[H], H]:
    """Wrap a servicer method callable by `roles`: authorize the caller, map errors to status
    codes, count, time and trace the call."""
    allowed = frozenset(roles)
    assert allowed, "an RPC without roles could never be called"

    def decorate(fn: H) -> H:
        method = fn.__name__

        @functools.wraps(fn)
        async def wrapper(
            self: Servicer, request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> Any:
            start = time.perf_counter()
            code = grpc.StatusCode.OK
            parent = propagate.extract(dict(context.invocation_metadata() or ()))
            with _tracer.start_as_current_span(f"ManagerService/{method}", context=parent) as span:
                try:
                    _CALLER.set(authorize(context, self.cluster, allowed, method))
                    return await fn(self, request, context)
                except _REFUSALS as exc:
                    code, message = status_of(exc)
                    self.metrics.count_refusal(method, code.name)
                    log.warning(
                        "rpc refused",
                        extra={"method": method, "code": code.name, "why": message},
                    )
                except (ManagerError, StoreUnavailable, SecretDecryptError) as exc:
                    code, message = status_of(exc)
                    log.info(
                        "rpc refused", extra={"method": method, "code": code.name, "why": message}
                    )
                except Exception:
                    code, message = grpc.StatusCode.INTERNAL, "internal error (see the manager log)"
                    log.exception("rpc failed", extra={"method": method})
                finally:
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    self.metrics.observe_rpc(method, code.name, time.perf_counter() - start)
                await context.abort(code, message)

        return cast(H, wrapper)

    return decorate

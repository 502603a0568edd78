"""Module: the route table of a guest and the dispatch of one request to a handler."""

from __future__ import annotations

from collections.abc import Callable

from wr_sdk._http import Request, Response, to_response
from wr_sdk._wire import HEALTH_PATH, JOB_PATH_PREFIX
from wr_sdk.jobs import Job

Handler = Callable[[Request], object]
JobHandler = Callable[[Job], object]
JOB_FAILED_STATUS = 422


class HttpError(Exception):
    """Raise from a handler to answer with this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Module:
    """The routes of one module. Exactly one Module per guest; the export handler finds it."""

    current: Module | None = None

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        Module.current = self

    def route(self, path: str) -> Callable[[Handler], Handler]:
        """Decorator: register fn for requests whose path (without query) equals path."""

        def register(fn: Handler) -> Handler:
            self.add_route(path, fn)
            return fn

        return register

    def job(self, job_type: str) -> Callable[[JobHandler], JobHandler]:
        """Decorator: fn handles attempts of jobs of this type (see wr_sdk.jobs). Attempts
        arrive as POST /__job/<job_type>, a path no public route can reach."""

        def register(fn: JobHandler) -> JobHandler:
            self.add_route(JOB_PATH_PREFIX + job_type, lambda request: _run_job(fn, request))
            return fn

        return register

    def add_route(self, path: str, fn: Handler) -> None:
        if not path.startswith("/"):
            raise ValueError(f"route {path!r}: a route starts with '/'")
        if path in self.routes:
            raise ValueError(f"route {path}: registered twice")
        self.routes[path] = fn

    def serve(self, service: object) -> None:
        """Register every RPC of a generated service implementation at /{pkg}.{Service}/{Method}."""
        routes = getattr(service, "wr_routes", None)
        if routes is None:
            raise TypeError(f"{type(service).__name__} is not a generated wruntime service")
        for path, fn in routes().items():
            self.add_route(path, fn)

    def dispatch(self, request: Request) -> Response:
        """Run the handler for request; every failure becomes an HTTP status, never a trap."""
        fn = self.routes.get(request.route)
        if fn is None:
            if request.route == HEALTH_PATH:
                return Response(200, b"ok", [("content-type", "text/plain")])
            if request.route.startswith(JOB_PATH_PREFIX):
                job_type = request.route[len(JOB_PATH_PREFIX) :]
                return _error(404, f"no job handler for job type {job_type!r} in this module")
            return _error(404, f"no route for {request.route} in this module")
        try:
            return to_response(fn(request))
        except HttpError as exc:
            return _error(exc.status, exc.message)
        except MemoryError:
            return _error(500, "out of memory: the module exceeded its memory limit")
        except Exception as exc:
            return _error(500, f"{type(exc).__name__}: {exc}")


def _run_job(fn: JobHandler, request: Request) -> object:
    """A raising job handler is a failed attempt, answered 422: the job failed, the module is
    fine, so it must not count as a server error (5xx) in the proxy's circuit breaker, which
    would cut the whole module off after a few failing jobs."""
    try:
        return fn(Job(request))
    except (HttpError, MemoryError):
        raise
    except Exception as exc:
        return _error(JOB_FAILED_STATUS, f"{type(exc).__name__}: {exc}")


def _error(status: int, message: str) -> Response:
    return Response(status, message.encode(), [("content-type", "text/plain; charset=utf-8")])

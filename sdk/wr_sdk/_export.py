"""The `handler` export: WIT request in, Module dispatch, body to stdout, WIT response out."""

from __future__ import annotations

import sys

from wit_world.exports import Handler as _HandlerProtocol
from wit_world.imports import types as _types

from wr_sdk._app import Module
from wr_sdk._http import Request, write_fd

# stdout carries the response body: keep stray print()s out of it.
sys.stdout = sys.stderr


class Handler(_HandlerProtocol):
    def handle(self, req: _types.Request) -> _types.Response:
        module = Module.current
        if module is None:
            raise RuntimeError("the guest created no wr_sdk.Module")
        response = module.dispatch(Request(req.method, req.path, list(req.headers)))
        write_fd(1, response.body)
        return _types.Response(status=response.status, headers=list(response.headers))

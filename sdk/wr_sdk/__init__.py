"""wr_sdk: write wruntime modules in Python (guest library), plus the .proto -> Python codegen."""

from __future__ import annotations

from wr_sdk._app import HttpError, Module
from wr_sdk._host import CallError, GuestOnly, InvalidCallError, call, config, log
from wr_sdk._http import Request, Response
from wr_sdk.jobs import Job, JobError

__all__ = [
    "CallError",
    "GuestOnly",
    "HttpError",
    "InvalidCallError",
    "Job",
    "JobError",
    "Module",
    "Request",
    "Response",
    "call",
    "config",
    "log",
]

"""The job gateway: how modules submit jobs and read their status (`wr_sdk.jobs`).

A guest calls `http://wr-jobs/submit` or `http://wr-jobs/status/<job id>` like any outbound
URL; the router sends those calls (from this node's engines only) to this small HTTP app on a
loopback port of its own, which relays them to the manager over the proxy's mutual-TLS
channel with the node's identity. The guest never holds a credential, and the submitting
module (x-wr-source, set by its engine, not by the guest) is recorded with the job.

POST /submit, JSON: {"namespace", "module", "job_type", "payload" (base64), "version",
"max_attempts", "timeout_secs", "idempotency_key"} -> {"job_id", "existing"}.
GET /status/<job id> -> {"job_id", "state", "result" (base64), "error", "attempt",
"max_attempts"}. Errors: the manager's gRPC status as HTTP (400, 403, 404, 503), text body.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import Any

import grpc
from aiohttp import web

from runtime import wire
from runtime.api import wruntime_pb2 as pb
from runtime.proxy.manager_link import ManagerLink

log = logging.getLogger("wr-proxy.jobs")
# A payload's base64 in JSON; the manager holds the real limit ([jobs] max_bytes, <= 3 MiB).
MAX_BODY = 5 * 1024 * 1024
RPC_TIMEOUT_SECS = 10.0
_HTTP_OF = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
STATE_NAMES = {
    pb.JOB_STATE_PENDING: "pending",
    pb.JOB_STATE_RUNNING: "running",
    pb.JOB_STATE_COMPLETE: "complete",
    pb.JOB_STATE_DEAD: "dead",
}


class _BadRequest(Exception):
    pass


class JobGateway:
    """`start()` binds 127.0.0.1 on a free port (`address`); `stop()`."""

    def __init__(self, manager: ManagerLink) -> None:
        self.manager = manager
        self.address = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/submit", self._submit)
        app.router.add_get("/status/{job_id}", self._status)
        runner = self._runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.address = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _submit(self, request: web.Request) -> web.Response:
        try:
            req = _submit_request(await request.read())
        except _BadRequest as exc:
            return _text(400, str(exc))
        source, source_ns = (
            request.headers.get(wire.SOURCE_HEADER),
            request.headers.get(wire.SOURCE_NS_HEADER),
        )
        if source and source_ns:
            req.submitted_by = wire.module_host(source_ns, source)
        req.traceparent = request.headers.get("traceparent", "")
        try:
            answer = await self.manager.stub.SubmitJob(req, timeout=RPC_TIMEOUT_SECS)
        except grpc.aio.AioRpcError as exc:
            return _rpc_error(exc)
        return web.json_response({"job_id": answer.job_id, "existing": answer.existing})

    async def _status(self, request: web.Request) -> web.Response:
        req = pb.GetJobStatusRequest(job_id=request.match_info["job_id"])
        try:
            status = await self.manager.stub.GetJobStatus(req, timeout=RPC_TIMEOUT_SECS)
        except grpc.aio.AioRpcError as exc:
            return _rpc_error(exc)
        return web.json_response(
            {
                "job_id": status.job_id,
                "state": STATE_NAMES.get(status.status, "unknown"),
                "result": base64.b64encode(status.result).decode(),
                "error": status.error_message,
                "attempt": status.attempt,
                "max_attempts": status.max_attempts,
            }
        )


def _submit_request(body: bytes) -> pb.SubmitJobRequest:
    try:
        fields: Any = json.loads(body)
    except ValueError as exc:
        raise _BadRequest(f"submit: the body is not JSON: {exc}") from None
    if not isinstance(fields, dict):
        raise _BadRequest("submit: expected a JSON object")
    try:
        payload = base64.b64decode(fields.get("payload", ""), validate=True)
    except (binascii.Error, TypeError) as exc:
        raise _BadRequest(f"submit: payload is not base64: {exc}") from None
    try:
        return pb.SubmitJobRequest(
            worker_namespace=str(fields.get("namespace", "")),
            worker_name=str(fields.get("module", "")),
            worker_version=str(fields.get("version") or ""),
            job_type=str(fields.get("job_type", "")),
            payload=payload,
            timeout_secs=int(fields.get("timeout_secs") or 0),
            max_attempts=int(fields.get("max_attempts") or 0),
            idempotency_key=str(fields.get("idempotency_key") or ""),
        )
    except (TypeError, ValueError) as exc:  # a negative or non-numeric count
        raise _BadRequest(f"submit: {exc}") from None


def _rpc_error(exc: grpc.aio.AioRpcError) -> web.Response:
    status = _HTTP_OF.get(exc.code(), 502)
    if status >= 500:
        log.warning("job gateway: manager call failed", extra={"why": exc.details()})
    return _text(status, f"manager: {exc.details()}")


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")

"""`wrctl invoke`: one request through a node's proxy, protobuf-encoded when the module
registered a schema for the method's path."""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from runtime import wire
from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.manager_failover import AWAY
from runtime.wire import DESTINATION_HEADER, SOURCE_HEADER, VERSION_HEADER, module_host
from wrctl.credentials import OperatorCredentials, manager_channel, refusal
from wrctl.errors import WrctlError

_TARGET = re.compile(r"([a-z0-9-]{1,24})\.([a-z0-9-]{1,24})(/.*)?")


@dataclass(frozen=True)
class InvokeResult:
    status: int
    reason: str
    body: bytes
    decoded: object  # the body as JSON: the protobuf reply of an RPC, or a JSON answer
    elapsed_ms: float
    trace_id: str
    headers: dict[str, str]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def parse_target(target: str) -> tuple[str, str, str]:
    """`ns.module/path` -> (ns, module, /path)."""
    m = _TARGET.fullmatch(target)
    if not m:
        raise WrctlError(
            f"{target!r} is not a module target; expected NAMESPACE.MODULE/PATH "
            "like example.echo/echo.EchoService/Echo"
        )
    return m.group(1), m.group(2), m.group(3) or "/"


def rpc_path(target: str) -> bool:
    """Is the target's path `/Service/Method`, the only shape a registered schema describes?"""
    return len(parse_target(target)[2].strip("/").split("/")) == 2


def _schema_messages(
    manager: str | Sequence[str],
    credentials: OperatorCredentials,
    namespace: str,
    module: str,
    version: str,
    path: str,
) -> tuple[type[Message], type[Message]] | None:
    """Request and response classes of the RPC at path, from the module's registered schema
    (asked of each manager in turn until one answers). A manager that refuses our
    credentials is an error (not "no schema": the body would go out unencoded without a
    word)."""
    request = pb.GetSchemaRequest(module=module, namespace=namespace, version=version)
    reply = None
    for address in [manager] if isinstance(manager, str) else manager:
        try:
            with manager_channel(address, credentials) as channel:
                reply = pb_grpc.ManagerServiceStub(channel).GetSchema(request, timeout=5)
            break
        except grpc.RpcError as exc:
            refused = refusal(exc, address, credentials, "GetSchema")
            if refused is not None:
                raise refused from None
            if not (isinstance(exc, grpc.Call) and exc.code() in AWAY):
                return None
    if reply is None:
        return None
    if not reply.proto_schema:
        return None
    fds = descriptor_pb2.FileDescriptorSet.FromString(reply.proto_schema)
    pool = descriptor_pool.DescriptorPool()
    for f in fds.file:
        pool.Add(f)
    parts = path.strip("/").split("/")
    if len(parts) != 2:
        return None
    try:
        service = pool.FindServiceByName(parts[0])
    except KeyError:
        return None
    method = service.methods_by_name.get(parts[1])
    if method is None:
        return None
    return (
        message_factory.GetMessageClass(method.input_type),
        message_factory.GetMessageClass(method.output_type),
    )


def invoke(
    target: str,
    data: bytes | None,
    proxy: str,
    manager: str | Sequence[str],
    credentials: OperatorCredentials | None,
    version: str | None = None,
    method: str = "POST",
    timeout_s: float = 30.0,
) -> InvokeResult:
    """One request; without credentials (None) no schema is looked up: the body goes as given."""
    namespace, module, path = parse_target(target)
    messages = (
        _schema_messages(manager, credentials, namespace, module, version or "", path)
        if credentials is not None
        else None
    )
    body = data or b""
    if messages and data is not None:
        try:
            body = json_format.Parse(data.decode() or "{}", messages[0]()).SerializeToString()
        except json_format.ParseError as exc:
            raise WrctlError(
                f"--data does not fit {messages[0].DESCRIPTOR.full_name}: {exc}"
            ) from None
    elif messages:
        body = messages[0]().SerializeToString()
    trace_id = os.urandom(16).hex()
    headers = {
        DESTINATION_HEADER: f"http://{module_host(namespace, module)}{path}",
        SOURCE_HEADER: "wrctl",
        "traceparent": f"00-{trace_id}-{os.urandom(8).hex()}-01",
        "content-type": "application/protobuf" if messages else "application/octet-stream",
    }
    if version:
        headers[VERSION_HEADER] = version
    host, _, port = proxy.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port or wire.PROXY_DATA_PORT), timeout=timeout_s)
    started = time.perf_counter()
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
    except OSError as exc:
        raise WrctlError(f"proxy at {proxy} did not answer: {exc}") from None
    finally:
        conn.close()
    elapsed = (time.perf_counter() - started) * 1000
    decoded: object = None
    if messages and 200 <= response.status < 300:
        try:
            decoded = json_format.MessageToDict(messages[1].FromString(payload))
        except Exception:  # a body that is not the declared message is shown raw
            decoded = None
    elif _is_json(response.getheader("content-type", "")):
        try:  # a JSON answer nests in --json's summary as JSON, not as a string
            decoded = json.loads(payload)
        except ValueError:
            decoded = None
    return InvokeResult(
        response.status,
        response.reason,
        payload,
        decoded,
        elapsed,
        trace_id,
        {k.lower(): v for k, v in response.getheaders()},
    )


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")

"""NodeService on the control port: engine register/heartbeat/deregister relayed to the manager."""

# While the manager is away the proxy answers from what it knows (registrations are accepted,
# heartbeats acknowledged) and replays what the manager missed once it answers again.

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import NODE, Identity, PermissionDenied, Unauthenticated, authorize
from runtime.proxy.manager_link import ManagerLink

log = logging.getLogger("wr-proxy.control")

_Context = grpc.aio.ServicerContext[Any, Any]
_AWAY = frozenset((grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED))


def _engine(request: pb.HeartbeatRequest) -> dict[str, str]:
    return {"engine_id": request.engine_id}


class NodeControl(pb_grpc.NodeServiceServicer):  # type: ignore[misc]
    """Relays engine lifecycle calls and keeps the registrations of this node's engines.

    Only this node's engines may call: they present the node certificate, so the caller must
    be the node identity this proxy holds (same cluster, same name)."""

    def __init__(
        self,
        manager: ManagerLink,
        peer_address: str,
        node: Identity,
        node_name: str = "",
        timeout: float = 3.0,
    ) -> None:
        self._manager = manager
        self._peer_address = peer_address
        self._node = node
        self._node_name = node_name or node.name
        self._timeout = timeout
        self.registrations: dict[str, pb.RegisterEngineRequest] = {}
        self.unsynced: set[str] = set()  # accepted while the manager was away
        self.unsynced_deregistrations: set[str] = set()
        self.last_heartbeats: dict[str, pb.HeartbeatRequest] = {}

    async def _admit(self, context: _Context, rpc: str) -> None:
        what = f"NodeService.{rpc} on node {self._node.name!r}"
        try:
            who = authorize(context, self._node.cluster, frozenset((NODE,)), what)
            if who.name != self._node.name:
                raise PermissionDenied(
                    f"{what}: refused to {who}; only engines of node {self._node.name!r}"
                    " (presenting its certificate) may call it"
                )
        except Unauthenticated as exc:
            log.warning("control call refused", extra={"rpc": rpc, "error": str(exc)})
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except PermissionDenied as exc:
            log.warning("control call refused", extra={"rpc": rpc, "error": str(exc)})
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))

    async def RegisterEngine(
        self, request: pb.RegisterEngineRequest, context: _Context
    ) -> pb.RegisterEngineResponse:
        await self._admit(context, "RegisterEngine")
        engine_id = request.registration.engine_id
        if not engine_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "registration.engine_id is empty")
        # The node's identity is the proxy's business: fill in what the engine left out.
        if not request.registration.peer_address:
            request.registration.peer_address = self._peer_address
        if not request.registration.node and self._node_name:
            request.registration.node = self._node_name
        self.registrations[engine_id] = request
        self.unsynced_deregistrations.discard(engine_id)
        try:
            response: pb.RegisterEngineResponse = await self._manager.stub.RegisterEngine(
                request, timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in _AWAY:
                self.registrations.pop(engine_id, None)
                await context.abort(exc.code(), f"manager: {exc.details()}")
            self.unsynced.add(engine_id)
            log.warning(
                "manager away: registration kept to replay later", extra={"engine_id": engine_id}
            )
            return pb.RegisterEngineResponse(accepted=True)
        self.unsynced.discard(engine_id)
        return response

    async def Heartbeat(
        self, request: pb.HeartbeatRequest, context: _Context
    ) -> pb.HeartbeatResponse:
        await self._admit(context, "Heartbeat")
        self.last_heartbeats[request.engine_id] = request
        if request.engine_id in self.unsynced:
            return pb.HeartbeatResponse()  # the manager does not know it yet: replay first
        try:
            await self._manager.stub.Heartbeat(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in _AWAY:
                return pb.HeartbeatResponse()
            if exc.code() == grpc.StatusCode.NOT_FOUND and request.engine_id in self.registrations:
                # The manager lost the engine (e.g. restarted without state): register again.
                log.info("manager forgot the engine: registering it again", extra=_engine(request))
                self.unsynced.add(request.engine_id)
                await self.replay()
                return pb.HeartbeatResponse()
            await context.abort(exc.code(), f"manager: {exc.details()}")
        return pb.HeartbeatResponse()

    async def DeregisterEngine(
        self, request: pb.DeregisterEngineRequest, context: _Context
    ) -> pb.DeregisterEngineResponse:
        await self._admit(context, "DeregisterEngine")
        self.registrations.pop(request.engine_id, None)
        self.last_heartbeats.pop(request.engine_id, None)
        was_unsynced = request.engine_id in self.unsynced
        self.unsynced.discard(request.engine_id)
        try:
            await self._manager.stub.DeregisterEngine(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in _AWAY:
                if exc.code() == grpc.StatusCode.NOT_FOUND and was_unsynced:
                    return pb.DeregisterEngineResponse()
                await context.abort(exc.code(), f"manager: {exc.details()}")
            if not was_unsynced:
                self.unsynced_deregistrations.add(request.engine_id)
        return pb.DeregisterEngineResponse()

    async def deregister_all(self, per_call_s: float = 1.0) -> None:
        """On shutdown: this node's engines cannot be reached without their proxy, so tell the
        manager now rather than after their heartbeats time out (and do not leave engines that
        deregister on their own SIGTERM, which races the proxy's exit, listed as registered).
        An engine that outlives the proxy registers again when its heartbeat gets NOT_FOUND."""
        engine_ids = sorted(self.registrations.keys() - self.unsynced)
        if not engine_ids:
            return

        async def one(engine_id: str) -> None:
            try:
                await self._manager.stub.DeregisterEngine(
                    pb.DeregisterEngineRequest(engine_id=engine_id), timeout=per_call_s
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    log.warning(
                        "engine not deregistered at shutdown",
                        extra={"engine_id": engine_id, "error": exc.details()},
                    )
                return
            log.info("engine deregistered at shutdown", extra={"engine_id": engine_id})

        await asyncio.gather(*(one(e) for e in engine_ids))
        self.registrations.clear()

    def pending(self) -> bool:
        """Whether anything waits to be replayed to the manager."""
        return bool(self.unsynced or self.unsynced_deregistrations)

    async def replay(self) -> None:
        """Send the manager what it missed while away; what still fails stays for next time."""
        for engine_id in sorted(self.unsynced_deregistrations):
            try:
                await self._manager.stub.DeregisterEngine(
                    pb.DeregisterEngineRequest(engine_id=engine_id), timeout=self._timeout
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _AWAY:
                    return
            self.unsynced_deregistrations.discard(engine_id)
        for engine_id in sorted(self.unsynced):
            request = self.registrations.get(engine_id)
            if request is None:
                self.unsynced.discard(engine_id)
                continue
            try:
                await self._manager.stub.RegisterEngine(request, timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _AWAY:
                    return
                # Refused (e.g. PERMISSION_DENIED: not placed on this node). Forget it, so the
                # engine's next heartbeat gets NOT_FOUND and it registers again itself: the
                # refusal then reaches the engine, at the engine's pace, not in a loop here.
                self.unsynced.discard(engine_id)
                self.registrations.pop(engine_id, None)
                self.last_heartbeats.pop(engine_id, None)
                log.error(
                    "manager refused a replayed registration; dropped it",
                    extra={
                        "engine_id": engine_id,
                        "code": exc.code().name,
                        "error": exc.details(),
                    },
                )
                continue
            self.unsynced.discard(engine_id)
            log.info("registration replayed to the manager", extra={"engine_id": engine_id})
            beat = self.last_heartbeats.get(engine_id)
            if beat is None:
                continue
            try:
                await self._manager.stub.Heartbeat(beat, timeout=self._timeout)
            except grpc.aio.AioRpcError as exc:
                log.warning(
                    "replayed heartbeat failed", extra={"engine_id": engine_id, "error": _rpc(exc)}
                )


def _rpc(exc: grpc.aio.AioRpcError) -> str:
    return f"{exc.code().name}: {exc.details()}"

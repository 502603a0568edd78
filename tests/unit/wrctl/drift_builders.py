"""GetClusterStateResponse pieces for drift tests: releases, engines, rules."""

from __future__ import annotations

from runtime.api import wruntime_pb2 as pb
from runtime.wire import split_module_key
from wrctl.plan.live import encode_resources
from wrctl.plan.state import Resource

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
ECHO = "example.echo@1.0.0"
CALLER = "example.caller@1.0.0"


def release(
    target: str,
    digests: dict[str, str],
    engines: int = 1,
    resources: list[Resource] | None = None,
    status: str = "applied",
) -> pb.ReleaseRecord:
    """A node's release placing `digests`; its resources say how many engines it runs."""
    if resources is None:
        resources = [Resource(f"node.{target}", "node", {"engines": str(engines)})]
    return pb.ReleaseRecord(
        target=target,
        bundle_digest=D1,
        module_digests=digests,
        status=status,
        attributes=encode_resources(resources),
    )


def module(key: str, digest: str) -> pb.ModuleDescriptor:
    namespace, name, version = split_module_key(key)
    return pb.ModuleDescriptor(namespace=namespace, name=name, version=version, digest=digest)


def engine(
    engine_id: str,
    node: str,
    serves: dict[str, str],
    healthy: bool = True,
    sick: frozenset[str] = frozenset(),
) -> pb.EngineStatus:
    """An engine of `node` serving module key -> digest; modules in `sick` report unhealthy."""
    modules = [module(k, d) for k, d in sorted(serves.items())]
    return pb.EngineStatus(
        registration=pb.EngineRegistration(
            engine_id=engine_id, node=node, modules=modules, address="http://127.0.0.1:9"
        ),
        healthy=healthy,
        modules=[
            pb.ModuleHealth(module=m, healthy=f"{m.namespace}.{m.name}@{m.version}" not in sick)
            for m in modules
        ],
    )


def rule(rule_id: str = "r1") -> pb.RoutingRule:
    return pb.RoutingRule(
        rule_id=rule_id,
        destination_namespace="example",
        destination_module="echo",
        destination_version="1.0.0",
        engine_id="evil",
        engine_address="http://10.0.0.9:8080",
        peer_address="https://10.0.0.9:9443",
        healthy=True,
    )

"""Request builders and constants shared by the manager tests."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.wire import module_key

KEY_ENV = "WR_SECRETS_KEY"
KEY = base64.b64encode(bytes(range(32))).decode()
OTHER_KEY = base64.b64encode(bytes(range(1, 33))).decode()
START = 1_800_000_000.0


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def module(
    name: str = "echo", namespace: str = "example", version: str = "1.0.0", schema: bytes = b""
) -> pb.ModuleDescriptor:
    return pb.ModuleDescriptor(
        name=name,
        namespace=namespace,
        version=version,
        digest=digest(f"{namespace}.{name}@{version}"),
        proto_schema=schema,
    )


def registration(
    engine_id: str = "engine-1",
    modules: list[pb.ModuleDescriptor] | None = None,
    node: str = "node-a",
    port: int = 9100,
    secrets: list[tuple[str, str]] = (),  # type: ignore[assignment]
) -> pb.RegisterEngineRequest:
    return pb.RegisterEngineRequest(
        registration=pb.EngineRegistration(
            engine_id=engine_id,
            address=f"http://127.0.0.1:{port}",
            proxy_address="http://127.0.0.1:9001",
            peer_address="https://127.0.0.1:9443",
            node=node,
            runtime_version="0.1.0",
            modules=[module()] if modules is None else modules,
            secrets=[pb.SecretRequest(namespace=ns, key=key) for ns, key in secrets],
        )
    )


def release(target: str = "node-a", bundle: str = "bundle-1") -> pb.ReleaseRecord:
    return pb.ReleaseRecord(
        target=target,
        bundle_digest=digest(bundle),
        module_digests={"example.echo@1.0.0": digest("example.echo@1.0.0")},
        runtime_version="0.1.0",
        applied_by="tester@host",
        attributes={"format": "supervisor"},
    )


# What the `node` fixture's release places on node-a: every module the tests register there.
DEFAULT_MODULES = (
    "example.echo@1.0.0",
    "example.echo@1.1.0",
    "example.echo@1.2.0",
    "example.other@1.0.0",
    "example.caller@1.0.0",
    "example.caller@2.1.0",
)
# Secrets the default release grants to example.echo@1.0.0 (the builders' default module).
DEFAULT_GRANTS = (
    ("example.echo@1.0.0", "example", "api-key"),
    ("example.echo@1.0.0", "example", "missing-one"),
    ("example.echo@1.0.0", "shop", "token"),
)


def placement(
    target: str,
    modules: Iterable[str] = DEFAULT_MODULES,
    grants: Iterable[tuple[str, str, str]] = DEFAULT_GRANTS,
    status: str = "applied",
    bundle: str = "placed",
) -> pb.ReleaseRecord:
    """A release of `target` placing `modules` (keys; digests as `module()` makes them)."""
    record = pb.ReleaseRecord(
        target=target,
        bundle_digest=digest(bundle),
        module_digests={key: digest(key) for key in modules},
        runtime_version="0.1.0",
        applied_by="tester@host",
        status=status,
        secret_grants=[pb.SecretGrant(module=m, namespace=ns, key=k) for m, ns, k in grants],
    )
    return record


async def record(operator: pb_grpc.ManagerServiceStub, release: pb.ReleaseRecord) -> int:
    """Record `release` as wrctl apply does: under the apply lock; return the serial."""
    lock = await operator.AcquireApplyLock(pb.AcquireApplyLockRequest(holder="tester", ttl_secs=60))
    assert lock.acquired, f"apply lock held by {lock.lock.holder}"
    try:
        response = await operator.RecordRelease(
            pb.RecordReleaseRequest(release=release, lock_id=lock.lock.lock_id)
        )
    finally:
        await operator.ReleaseApplyLock(pb.ReleaseApplyLockRequest(lock_id=lock.lock.lock_id))
    return int(response.serial)


async def place(
    operator: pb_grpc.ManagerServiceStub,
    target: str,
    modules: Iterable[str] = DEFAULT_MODULES,
    grants: Iterable[tuple[str, str, str]] = DEFAULT_GRANTS,
    status: str = "applied",
) -> int:
    """Record a release placing `modules` on node `target`, so its engines may register them."""
    return await record(operator, placement(target, modules, grants, status))


def key_of(desc: pb.ModuleDescriptor) -> str:
    return module_key(desc.namespace, desc.name, desc.version)

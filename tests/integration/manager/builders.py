"""Request builders and constants shared by the manager tests."""

from __future__ import annotations

import base64
import hashlib

from runtime.api import wruntime_pb2 as pb

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

"""Prepare configured modules: precompiled artifact, digest, schema, worker spec, descriptor."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from runtime.api import wruntime_pb2 as pb
from runtime.engine.component_cache import CachedComponent, ComponentCache
from runtime.engine.config import ModuleConfig
from runtime.engine.spec import ModuleSpec

log = logging.getLogger("wr-engine.modules")


class SchemaError(Exception):
    """A schema_path that cannot be read or compiled."""


@dataclass
class PreparedModule:
    config: ModuleConfig
    cached: CachedComponent
    schema: bytes

    @property
    def key(self) -> str:
        return self.config.key

    def spec(self) -> ModuleSpec:
        c = self.config
        return ModuleSpec(
            c.name,
            c.namespace,
            c.version,
            str(self.cached.artifact),
            c.request_timeout_secs,
            c.memory_limit_mb << 20,
            c.max_body_mb << 20,
            list(c.capabilities),
            c.inline_env(),
        )

    def descriptor(self) -> pb.ModuleDescriptor:
        c = self.config
        return pb.ModuleDescriptor(
            name=c.name,
            namespace=c.namespace,
            version=c.version,
            digest=self.cached.digest,
            proto_schema=self.schema,
            worker_max_attempts=c.worker_max_attempts or 0,
        )


def load_schema(path: Path | None) -> bytes:
    """FileDescriptorSet bytes: a `.proto` is compiled, anything else is read as compiled."""
    if path is None:
        return b""
    if path.suffix == ".proto":
        from wr_sdk.codegen import ProtoError, compile_descriptor_set

        try:
            return compile_descriptor_set(path)
        except ProtoError as exc:
            raise SchemaError(str(exc)) from None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read schema: {exc.strerror}") from None


def prepare(modules: list[ModuleConfig], cache: ComponentCache) -> list[PreparedModule]:
    prepared = []
    for m in modules:
        cached = cache.ensure(m.wasm_path)
        log.info(
            "module ready to load",
            extra={
                "wr_module": m.key,
                "digest": cached.digest,
                "compiled": cached.compiled,
                "seconds": round(cached.seconds, 3),
            },
        )
        prepared.append(PreparedModule(m, cached, load_schema(m.schema_path)))
    return prepared


def module_env(config: ModuleConfig, secrets: dict[str, dict[str, str]]) -> dict[str, str]:
    """Inline env plus the secret values registration returned for the module's namespace."""
    env = config.inline_env()
    available = secrets.get(config.namespace, {})
    for var, key in config.secret_keys().items():
        if key in available:
            env[var] = available[key]
        else:
            log.error(
                "secret not provided by the control plane",
                extra={"wr_module": config.key, "secret": key},
            )
    return env

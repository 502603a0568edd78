"""What a worker process is told about each module (plain data, passed as JSON)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.wire import module_host


@dataclass
class ModuleSpec:
    name: str
    namespace: str
    version: str
    artifact: str  # path of the verified precompiled component
    timeout_secs: float
    memory_limit_bytes: int
    max_body_bytes: int
    capabilities: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return module_host(self.namespace, self.name)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModuleSpec:
        return cls(**data)


@dataclass
class WorkerSettings:
    """Everything a worker needs: its modules, the proxy for outbound calls, its scratch dir."""

    modules: list[ModuleSpec]
    proxy_address: str
    scratch_dir: str
    threads: int = 16  # requests a worker holds; calls back into this engine may double it
    resident_bytes: int = 0
    engine_id: str = ""  # marks this engine's outbound calls (wire.CALLER_ENGINE_HEADER)
    # capability -> its host binding's settings (runtime/engine/capabilities.py)
    capabilities: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "modules": [m.to_json() for m in self.modules],
            "proxy_address": self.proxy_address,
            "scratch_dir": self.scratch_dir,
            "threads": self.threads,
            "resident_bytes": self.resident_bytes,
            "capabilities": self.capabilities,
            "engine_id": self.engine_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerSettings:
        return cls(
            modules=[ModuleSpec.from_json(m) for m in data["modules"]],
            proxy_address=data["proxy_address"],
            scratch_dir=data["scratch_dir"],
            threads=data.get("threads", 16),
            resident_bytes=data.get("resident_bytes", 0),
            capabilities=data.get("capabilities", {}),
            engine_id=data.get("engine_id", ""),
        )

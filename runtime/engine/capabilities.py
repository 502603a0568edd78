"""The one list of host capabilities, and the checks every side makes against it.

A capability is a WIT package a module may import once cluster.toml grants it (`capabilities =
[...]` on its [[module]]) and the node's engine.toml provides what its host side needs. The
registry says, per capability: its WIT package and interfaces (what `wrctl build` adds to a
guest's world, what `wrctl validate` and the engine look for in a component's imports), the
engine.toml keys it needs, and where its host binding lives (imported only in a worker, so
wrctl can read this module without wasmtime). runtime/engine/README.md says how to add one.

Standard library only: wrctl imports this at start-up.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from runtime.wire import CAPABILITIES, Capability

RUNTIME_PACKAGE = "wruntime:runtime/"
# The namespace secret holding the password of the namespace's Postgres role (wr_ns_<ns>):
# `wrctl apply` makes the role and stores its password; engines get it at registration.
DB_PASSWORD_SECRET = "wr-db-password"
HOST_INTERFACES = {
    "wruntime:runtime/log@0.1.0",
    "wruntime:runtime/config@0.1.0",
    "wruntime:runtime/outbound@0.1.0",
    "wruntime:runtime/types@0.1.0",
}


@dataclass(frozen=True)
class CapabilitySpec:
    """One host capability."""

    name: Capability
    package: str  # the WIT package, e.g. "wruntime:tracing@0.2.0" (wit/deps/<name>/)
    interfaces: tuple[str, ...]  # the interfaces a guest imports from it
    # engine.toml keys (dotted) the node must set before a module may use it, e.g. "database.url"
    node_config: tuple[str, ...]
    # "module:Class" of its HostBinding (see runtime/engine/cap_tracing.py); None: not
    # implemented by this engine yet, so a module importing it is refused
    binding: str | None
    # its section in engine.toml and cluster.toml (same name and shape in both), if any
    section: str | None = None
    # namespace secrets it always needs besides the `{ secret = "key" }` values of its section
    fixed_secrets: tuple[str, ...] = ()

    @property
    def imports(self) -> tuple[str, ...]:
        """Full import names as a component records them: `wruntime:tracing/span@0.2.0`."""
        pkg, _, version = self.package.partition("@")
        return tuple(f"{pkg}/{iface}@{version}" for iface in self.interfaces)

    @property
    def prefix(self) -> str:
        return self.package.partition("@")[0] + "/"


REGISTRY: Mapping[Capability, CapabilitySpec] = {
    spec.name: spec
    for spec in (
        CapabilitySpec(
            "db",
            "wruntime:db@0.4.0",
            ("database",),
            ("database.url",),
            binding="runtime.engine.cap_db:DbBinding",
            section="database",
            fixed_secrets=(DB_PASSWORD_SECRET,),
        ),
        CapabilitySpec(
            "blobstore",
            "wruntime:blobstore@0.1.0",
            ("store",),
            ("blobstore.endpoint",),
            binding="runtime.engine.cap_blobstore:BlobstoreBinding",
            section="blobstore",
        ),
        CapabilitySpec(
            "tracing",
            "wruntime:tracing@0.2.0",
            ("span",),
            (),  # spans are exported when otlp_endpoint is set, else they cost next to nothing
            binding="runtime.engine.cap_tracing:TracingBinding",
        ),
        CapabilitySpec(
            "llm",
            "wruntime:llm@0.2.0",
            ("inference",),
            ("llm.api_key",),
            binding="runtime.engine.cap_llm:LlmBinding",
            section="llm",
        ),
    )
}
assert tuple(REGISTRY) == CAPABILITIES, "runtime.wire.Capability and REGISTRY must agree"


def implemented() -> list[Capability]:
    return [name for name, spec in REGISTRY.items() if spec.binding is not None]


class ImportRejected(Exception):
    """A component importing something this engine will not provide to it."""


def capability_of(import_name: str) -> Capability | None:
    """The capability whose package an import belongs to, else None."""
    return next((c for c, s in REGISTRY.items() if import_name.startswith(s.prefix)), None)


def grant_line(capabilities: Iterable[str]) -> str:
    """The cluster.toml line that grants these capabilities."""
    quoted = ", ".join(f'"{c}"' for c in sorted(set(capabilities)))
    return f"capabilities = [{quoted}]"


def import_problem(module: str, name: str, granted: set[str]) -> str | None:
    """Why module may not import `name` with these grants (None: it may). Shared by the
    engine at load and `wrctl validate`, so both say the same thing."""
    if name.startswith("wasi:") or name in HOST_INTERFACES:
        return None
    capability = capability_of(name)
    if capability is None:
        return f"module {module}: imports {name}, which wruntime does not provide"
    if capability not in granted:
        return (
            f"module {module}: imports {name} but is not granted capability "
            f'"{capability}" (add {grant_line([*granted, capability])} to its [[module]])'
        )
    return None


def check_imports(module: str, imports: Iterable[str], granted: Iterable[str]) -> None:
    """Raise ImportRejected naming the first import the module may not have."""
    grants = set(granted)
    for name in sorted(imports):
        problem = import_problem(module, name, grants)
        if problem:
            raise ImportRejected(problem)
        capability = capability_of(name)
        if capability is not None and REGISTRY[capability].binding is None:
            raise ImportRejected(
                f'module {module}: capability "{capability}" is granted, but this engine '
                "does not provide its host side yet"
            )


def missing_node_config(capability: Capability, node_config: Mapping[str, Any]) -> list[str]:
    """The engine.toml keys `capability` needs that node_config (engine.toml as a dict) lacks."""
    missing = []
    for dotted in REGISTRY[capability].node_config:
        value: Any = node_config
        for part in dotted.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value in (None, "", [], {}):
            missing.append(dotted)
    return missing


def grant_problem(
    module: str, granted: Iterable[Capability], node_config: Mapping[str, Any]
) -> str | None:
    """Why a node cannot provide a module's granted capabilities (None: it can)."""
    for capability in sorted(set(granted)):
        missing = missing_node_config(capability, node_config)
        if missing:
            return (
                f'module {module} is granted capability "{capability}", but this node\'s '
                f"engine.toml does not set {', '.join(missing)}"
            )
    return None


def load_binding(capability: Capability) -> type[Any]:
    """The HostBinding class of an implemented capability (imported on first use)."""
    target = REGISTRY[capability].binding
    if target is None:
        raise ImportRejected(f'capability "{capability}" has no host side in this engine')
    module, _, name = target.partition(":")
    cls: type[Any] = getattr(importlib.import_module(module), name)
    return cls


def worker_settings(
    node_config: Mapping[str, Any], granted: Iterable[Capability]
) -> dict[str, dict[str, Any]]:
    """capability -> its binding's settings, for the implemented capabilities in `granted`:
    what the front passes its workers (WorkerSettings.capabilities)."""
    return {
        c: load_binding(c).settings(node_config)
        for c in sorted(set(granted))
        if REGISTRY[c].binding is not None
    }


def secret_keys(capability: Capability, node_config: Mapping[str, Any]) -> list[str]:
    """The namespace secrets a module granted `capability` needs on this node: its fixed
    ones and every `{ secret = "key" }` value in its section of the config (engine.toml, or
    cluster.toml: same shape). An engine asks registration for them in the module's
    namespace; `wrctl apply` grants them to the module (ReleaseRecord.secret_grants)."""
    spec = REGISTRY[capability]
    keys = set(spec.fixed_secrets)
    section = node_config.get(spec.section) if spec.section else None
    if isinstance(section, Mapping):
        for value in section.values():
            if isinstance(value, Mapping) and isinstance(value.get("secret"), str):
                keys.add(value["secret"])
    return sorted(keys)


def resolve_secret(value: Any, namespace_secrets: Mapping[str, str]) -> str | None:
    """A config value that is a plain string or `{ secret = "key" }` (a dict here, as
    settings travel to workers as JSON): the string, the secret's value, or None when the
    secret has not arrived (yet)."""
    if isinstance(value, Mapping):
        return namespace_secrets.get(str(value.get("secret")))
    return None if value is None else str(value)

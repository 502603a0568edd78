"""manifest.json of a bundle: what it is, for which platform, its modules and placeholders,
and the sha256 and size of every other file. Serialised the same way every time."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime.wire import module_key
from wrctl.bundle.hostverify import FORMAT_VERSION, check_manifest_schema

# Resolved on the host by install.sh; the deploy refuses a file that still holds one.
PLACEHOLDERS = [
    "@WORKDIR@",
    "@RELEASE@",
    "@CURRENT@",
    "@BIN@",
    "@TARGET@",
    "@IMAGE@",
    "@UID@",
    "@GID@",
]


@dataclass(frozen=True)
class ModuleEntry:
    namespace: str
    name: str
    version: str
    sha256: str  # hex of the component

    @property
    def key(self) -> str:
        return module_key(self.namespace, self.name, self.version)


@dataclass(frozen=True)
class HostSecret:
    """A secret the host must hold (never the bundle): where install.sh looks for it."""

    env: str  # install.sh writes `file` from this variable when it is set
    file: str  # relative to WORKDIR
    what: str


def make_manifest(
    *,
    kind: str,
    cluster: str,
    target: str,
    node: str | None,
    runtime_version: str,
    platform: Mapping[str, str],
    modules: list[ModuleEntry],
    programs: list[str],
    host_secrets: list[HostSecret],
    files: Mapping[str, bytes],
    digests: Mapping[str, str] | None = None,
) -> bytes:
    """The manifest.json bytes for `files` (every bundle file but the manifest itself);
    `digests` (path -> sha256 hex) when the caller has them already."""
    digests = digests or {n: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    manifest: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "cluster": cluster,
        "target": target,
        "node": node,
        "runtime_version": runtime_version,
        "platform": dict(platform),
        "modules": [
            {
                "key": m.key,
                "namespace": m.namespace,
                "name": m.name,
                "version": m.version,
                "sha256": m.sha256,
            }
            for m in sorted(modules, key=lambda m: m.key)
        ],
        "programs": programs,
        "placeholders": PLACEHOLDERS,
        "host_secrets": [vars(s) for s in host_secrets],
        "files": [
            {"path": name, "sha256": digests[name], "size": len(data)}
            for name, data in sorted(files.items())
        ],
    }
    check_manifest_schema(manifest)  # what we write, the host verifier accepts
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()

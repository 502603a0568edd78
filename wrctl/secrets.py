"""`wrctl secrets`: set, list and delete the manager's secrets over the operator channel.

A value comes from a hidden prompt (a terminal), all of stdin, or a file, never from an
argument, so it stays out of shell history and process listings; wrctl never prints,
logs or echoes it. Listings carry names, versions and which modules cluster.toml grants
them to (the modules whose env names the secret), never values.
"""

from __future__ import annotations

import datetime
import getpass
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from runtime.wire import module_key
from wrctl.config.model import ClusterConfig, SecretRef
from wrctl.errors import WrctlError

if TYPE_CHECKING:
    from runtime.api import wruntime_pb2 as pb

MAX_VALUE_BYTES = 64 * 1024


class SecretValueError(WrctlError):
    """A secret value could not be read, or is empty or not text."""


def read_value(
    label: str,
    from_file: Path | None = None,
    stdin: BinaryIO | None = None,
    is_tty: bool | None = None,
    prompt: Callable[[str], str] = getpass.getpass,
) -> str:
    """The value for secret `label` (NS/NAME): from `from_file`; else a hidden prompt, asked
    twice, when stdin is a terminal; else all of stdin. One trailing newline is dropped
    (`echo` adds it). Empty, oversized or non-UTF-8 values are refused."""
    if from_file is not None:
        try:
            raw = from_file.read_bytes()
        except OSError as exc:
            raise SecretValueError(f"--from-file {from_file}: {exc.strerror}") from None
        where = f"--from-file {from_file}"
    else:
        stream = stdin if stdin is not None else sys.stdin.buffer
        tty = stream.isatty() if is_tty is None else is_tty
        if tty:
            first = prompt(f"Value for {label} (hidden): ")
            if first != prompt(f"Again, to confirm {label}: "):
                raise SecretValueError(f"{label}: the two values differ; nothing was stored")
            raw = first.encode()
        else:
            raw = stream.read(MAX_VALUE_BYTES + 1)
        where = "the prompt" if tty else "stdin"
    if len(raw) > MAX_VALUE_BYTES:
        raise SecretValueError(f"{label}: the value from {where} exceeds {MAX_VALUE_BYTES} bytes")
    raw = raw.removesuffix(b"\n").removesuffix(b"\r")
    if not raw:
        raise SecretValueError(f"{label}: the value from {where} is empty; nothing was stored")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SecretValueError(
            f"{label}: the value from {where} is not UTF-8 text (secrets reach modules as "
            "environment variables); encode binary values, e.g. with base64"
        ) from None


def granted_modules(config: ClusterConfig, namespace: str, key: str) -> list[str]:
    """`ns.name@version` of every module in cluster.toml whose env names secret ns/key."""
    return sorted(
        module_key(m.namespace, m.name, m.version)
        for m in config.module
        if m.namespace == namespace
        and any(isinstance(v, SecretRef) and v.secret == key for v in m.env.values())
    )


@dataclass(frozen=True)
class SecretRow:
    namespace: str
    name: str
    version: int  # 0: named by cluster.toml but not held by the manager
    updated: datetime.datetime | None
    modules: tuple[str, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "namespace": self.namespace,
            "name": self.name,
            "version": self.version,
            "updated": self.updated.isoformat() if self.updated else None,
            "modules": list(self.modules),
            "missing": self.version == 0,
        }


def secret_rows(
    entries: list[pb.SecretEntry], config: ClusterConfig, namespace: str = ""
) -> list[SecretRow]:
    """One row per secret the manager holds, plus one per secret cluster.toml names that it
    does not hold (version 0: a plan error until it is set)."""
    rows = {
        (e.namespace, e.key): SecretRow(
            e.namespace,
            e.key,
            int(e.version),
            e.updated_at.ToDatetime(datetime.UTC) if e.HasField("updated_at") else None,
            tuple(granted_modules(config, e.namespace, e.key)),
        )
        for e in entries
    }
    for m in config.module:
        for value in m.env.values():
            wanted = (m.namespace, value.secret) if isinstance(value, SecretRef) else None
            if wanted and wanted not in rows and namespace in ("", m.namespace):
                modules = tuple(granted_modules(config, *wanted))
                rows[wanted] = SecretRow(*wanted, 0, None, modules)
    return [rows[k] for k in sorted(rows)]

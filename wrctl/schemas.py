"""Compile a module's .proto into a FileDescriptorSet with grpcio-tools' bundled protoc. Shared
by the bundler (which ships the result) and validation (which wants protoc's own complaint)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from wrctl.errors import WrctlError


class SchemaError(WrctlError):
    """protoc refused a schema; the message carries its first complaints (file:line:col)."""


def compile_schema(proto: Path) -> bytes:
    """The serialized FileDescriptorSet (imports included) of proto. protoc runs in a child
    process: its complaints go to its stderr, which the error then quotes."""
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "schema.binpb"
        args = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={proto.parent}",
            f"--proto_path={well_known}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            str(proto),
        ]
        done = subprocess.run(args, capture_output=True, text=True, check=False)
        if done.returncode != 0 or not out.exists():
            lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
            said = "; ".join(lines[:3]) or f"protoc exited {done.returncode}"
            raise SchemaError(f"{proto} does not compile: {said}")
        return out.read_bytes()

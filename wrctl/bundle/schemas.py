"""Compile a module's .proto into a FileDescriptorSet with grpcio-tools' bundled protoc."""

from __future__ import annotations

import tempfile
from pathlib import Path

from wrctl.errors import WrctlError


def compile_schema(proto: Path) -> bytes:
    """The serialized FileDescriptorSet (imports included) of proto."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "schema.binpb"
        args = [
            "protoc",
            f"--proto_path={proto.parent}",
            f"--proto_path={well_known}",
            f"--descriptor_set_out={out}",
            "--include_imports",
            str(proto),
        ]
        if protoc.main(args) != 0 or not out.exists():
            raise WrctlError(
                f"{proto}: protoc could not compile this schema (see its output above)"
            )
        return out.read_bytes()

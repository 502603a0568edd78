"""Run grpcio-tools' bundled protoc: FileDescriptorSets and `*_pb2.py` message modules."""

from __future__ import annotations

import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2


class ProtoError(Exception):
    """A .proto file protoc could not compile; the message carries protoc's file:line errors."""


def _include_dirs(proto: Path, includes: list[Path] | None) -> list[Path]:
    import grpc_tools

    std = Path(grpc_tools.__file__).parent / "_proto"
    return [proto.parent.resolve(), *(p.resolve() for p in includes or []), std]


def _run_protoc(proto: Path, includes: list[Path] | None, extra: list[str]) -> None:
    import io
    from contextlib import redirect_stderr

    from grpc_tools import protoc

    if not proto.is_file():
        raise ProtoError(f"{proto}: proto file not found")
    args = ["protoc", *(f"-I{d}" for d in _include_dirs(proto, includes)), *extra]
    args.append(str(proto.resolve()))
    # protoc prints its diagnostics on the C-level stderr; capture what Python sees too.
    err = io.StringIO()
    with redirect_stderr(err):
        code = protoc.main(args)
    if code != 0:
        raise ProtoError(f"{proto}: protoc failed (exit {code}) {err.getvalue().strip()}".strip())


def compile_descriptor_set(proto: Path, includes: list[Path] | None = None) -> bytes:
    """The serialized FileDescriptorSet of proto and everything it imports."""
    with tempfile.TemporaryDirectory(prefix="wr-protoc-") as tmp:
        out = Path(tmp) / "set.binpb"
        _run_protoc(proto, includes, [f"--descriptor_set_out={out}", "--include_imports"])
        return out.read_bytes()


def load_descriptor_set(data: bytes) -> descriptor_pb2.FileDescriptorSet:
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(data)
    return fds


def generate_messages(proto: Path, out_dir: Path, includes: list[Path] | None = None) -> Path:
    """Write `{stem}_pb2.py` for proto into out_dir and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _run_protoc(proto, includes, [f"--python_out={out_dir}"])
    return out_dir / f"{proto.stem}_pb2.py"

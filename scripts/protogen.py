"""Compile proto/wruntime.proto into runtime/api/ with grpcio-tools' bundled protoc.

Run `python scripts/protogen.py` after editing the proto; the build hook and
tests/unit/test_protogen.py call the same `generate()` so the committed copy cannot go stale.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto" / "wruntime.proto"
OUTPUTS = ("wruntime_pb2.py", "wruntime_pb2.pyi", "wruntime_pb2_grpc.py")
PACKAGE_DIR = "runtime/api"


def generate(out_root: Path) -> list[Path]:
    """Write the generated modules under out_root/runtime/api/ and return their paths."""
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    # Mapping the proto dir onto the package path makes protoc emit package-absolute imports
    # (`from runtime.api import wruntime_pb2`) instead of a bare `import wruntime_pb2`.
    args = [
        "protoc",
        f"--proto_path={PACKAGE_DIR}={PROTO.parent}",
        f"--proto_path={well_known}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        f"{PACKAGE_DIR}/{PROTO.name}",
    ]
    (out_root / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    return [out_root / PACKAGE_DIR / name for name in OUTPUTS]


def stale_files() -> list[str]:
    """Names of committed generated files that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        return [
            p.name
            for p in fresh
            if not (ROOT / PACKAGE_DIR / p.name).exists()
            or (ROOT / PACKAGE_DIR / p.name).read_bytes() != p.read_bytes()
        ]


if __name__ == "__main__":
    for path in generate(ROOT):
        print(f"wrote {path.relative_to(ROOT)}")
    sys.exit(0)

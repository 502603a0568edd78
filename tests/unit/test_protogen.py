"""The committed runtime/api modules must be exactly what protoc makes of proto/wruntime.proto."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _protogen():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("protogen", ROOT / "scripts" / "protogen.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_is_current() -> None:
    stale = _protogen().stale_files()
    assert stale == [], (
        f"runtime/api/{', '.join(stale)} out of date with proto/wruntime.proto: "
        "run `python scripts/protogen.py` and commit the result"
    )


def test_generated_code_imports_as_a_package() -> None:
    from runtime.api import wruntime_pb2, wruntime_pb2_grpc

    assert hasattr(wruntime_pb2_grpc, "ManagerServiceStub")
    assert hasattr(wruntime_pb2_grpc, "NodeServiceStub")
    msg = wruntime_pb2.ModuleDescriptor(name="echo", namespace="example", version="1.0.0")
    assert wruntime_pb2.ModuleDescriptor.FromString(msg.SerializeToString()) == msg

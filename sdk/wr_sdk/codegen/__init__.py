"""Host-side code generation from .proto files for wruntime guests (typed services and clients)."""

from __future__ import annotations

from wr_sdk.codegen.protoc import ProtoError, compile_descriptor_set, generate_messages
from wr_sdk.codegen.services import generate_guest_code, render_services

__all__ = [
    "ProtoError",
    "compile_descriptor_set",
    "generate_guest_code",
    "generate_messages",
    "render_services",
]

"""The names a WebAssembly component imports, read from its binary without compiling it.

Only the top level matters (nested components and core modules are what the component is
built from; its own import section is what a host must provide). The format: an 8-byte
preamble, then sections `id:u8 size:u32(LEB128) contents`; section 10 holds imports, each
`name externdesc`. Sections other than imports are skipped by size, so a 20 MB component
costs a few reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from runtime.wire import COMPONENT_HEADER

IMPORT_SECTION = 10


class ComponentFormatError(ValueError):
    """Bytes that are not a component this reader understands."""


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise ComponentFormatError("import section ends early")
        b = self.data[self.pos]
        self.pos += 1
        return b

    def leb(self) -> int:
        result = shift = 0
        while True:
            b = self.byte()
            result |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return result
            if shift > 35:
                raise ComponentFormatError("LEB128 number too long")

    def name(self) -> str:
        size = self.leb()
        raw = self.data[self.pos : self.pos + size]
        if len(raw) != size:
            raise ComponentFormatError("import name ends early")
        self.pos += size
        return raw.decode("utf-8")


def _file_leb(f: BinaryIO) -> int | None:
    result = shift = 0
    while True:
        b = f.read(1)
        if not b:
            return None
        result |= (b[0] & 0x7F) << shift
        shift += 7
        if not b[0] & 0x80:
            return result
        if shift > 35:
            raise ComponentFormatError("LEB128 number too long")


def _skip_externdesc(r: _Reader) -> None:
    kind = r.byte()
    if kind == 0x00:  # core module: 0x11 typeidx
        r.byte()
        r.leb()
    elif kind in (0x01, 0x04, 0x05):  # func, component, instance: typeidx
        r.leb()
    elif kind == 0x02:  # value: eq valueidx | valtype
        r.byte()
        r.leb()
    elif kind == 0x03:  # type: eq typeidx | sub resource
        if r.byte() == 0x00:
            r.leb()
    else:
        raise ComponentFormatError(f"unknown import kind 0x{kind:02x}")


def _section_imports(data: bytes) -> list[str]:
    r = _Reader(data)
    names = []
    for _ in range(r.leb()):
        tag = r.byte()
        if tag != 0x00:  # 0x01 (a name with a version suffix) is not what our builds make
            raise ComponentFormatError(f"unknown import name tag 0x{tag:02x}")
        names.append(r.name())
        _skip_externdesc(r)
    return names


def component_imports(path: Path) -> list[str]:
    """Every top-level import name of the component at path, e.g. `wasi:cli/stdin@0.2.0`."""
    names: list[str] = []
    with path.open("rb") as f:
        if f.read(len(COMPONENT_HEADER)) != COMPONENT_HEADER:
            raise ComponentFormatError(f"{path} is not a WebAssembly component")
        while True:
            head = f.read(1)
            if not head:
                return names
            size = _file_leb(f)
            if size is None:
                raise ComponentFormatError(f"{path}: a section header ends early")
            if head[0] == IMPORT_SECTION:
                data = f.read(size)
                if len(data) != size:
                    raise ComponentFormatError(f"{path}: the import section ends early")
                names += _section_imports(data)
            else:
                f.seek(size, 1)

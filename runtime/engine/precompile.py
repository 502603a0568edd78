"""`python -m runtime.engine.precompile SRC.wasm OUT`: compile a component in its own process.

Compiling peaks at ~400 MB RSS, so it never happens inside the front or a worker.
"""

from __future__ import annotations

import sys
from pathlib import Path

import wasmtime
from wasmtime.component import Component

from runtime.engine.wasm_config import make_config


def precompile(source: Path, output: Path) -> None:
    engine = wasmtime.Engine(make_config())
    component = Component.from_file(engine, str(source))
    output.write_bytes(component.serialize())


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit("usage: python -m runtime.engine.precompile SRC.wasm OUT")
    try:
        precompile(Path(sys.argv[1]), Path(sys.argv[2]))
    except wasmtime.WasmtimeError as exc:
        reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        sys.exit(f"{sys.argv[1]}: not a valid WASM component: {reason[:300]}")


if __name__ == "__main__":
    main()

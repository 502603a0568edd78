"""`wrctl invoke`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from wrctl.console import err, out, print_json
from wrctl.errors import WrctlError
from wrctl.invoke import invoke


def run_invoke(
    target: str,
    data: str | None,
    data_file: Path | None,
    version: str | None,
    proxy: str,
    manager: str,
    method: str,
    json_out: bool,
) -> bool:
    if data is not None and data_file is not None:
        raise WrctlError("give --data or --data-file, not both")
    body = data.encode() if data is not None else None
    if data_file is not None:
        try:
            body = data_file.read_bytes()
        except OSError as exc:
            raise WrctlError(f"--data-file {data_file}: {exc.strerror}") from None
    result = invoke(target, body, proxy, manager, version, method.upper())
    if json_out:
        print_json(
            {
                "status": result.status,
                "elapsed_ms": round(result.elapsed_ms, 2),
                "trace_id": result.trace_id,
                "body": result.decoded
                if result.decoded is not None
                else result.body.decode("utf-8", "replace"),
            }
        )
        return result.ok
    colour = "green" if result.ok else "red"
    err.print(
        f"[{colour}]{result.status} {result.reason}[/{colour}] in {result.elapsed_ms:.1f} ms, "
        f"trace {result.trace_id}"
    )
    if result.decoded is not None:
        out.print_json(json.dumps(result.decoded))
    else:
        sys.stdout.write(result.body.decode("utf-8", "replace"))
        if result.body and not result.body.endswith(b"\n"):
            sys.stdout.write("\n")
    return result.ok

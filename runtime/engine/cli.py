"""`wr-engine --config engine.toml`: the engine's entry point (thin: parse, load, run)."""

from __future__ import annotations

import argparse
import logging
import sys

from runtime.engine.component_cache import CompileError
from runtime.engine.config import load_engine_config
from runtime.engine.modules import SchemaError
from runtime.engine.pool import WorkerStartError
from runtime.engine.service import serve
from runtime.identity import TlsMaterialError
from runtime.logs import setup_logging
from runtime.tomlconfig import ConfigError


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="wr-engine", description="Run WASM modules (wruntime).")
    parser.add_argument("--config", required=True, help="path of engine.toml")
    args = parser.parse_args(argv)
    try:
        config = load_engine_config(args.config)
    except ConfigError as exc:
        sys.exit(f"wr-engine: {exc}")
    setup_logging("wr-engine", config.log_level)
    try:
        import uvloop

        uvloop.run(serve(config))
    except (CompileError, SchemaError, WorkerStartError, TlsMaterialError) as exc:
        logging.getLogger("wr-engine").error("start-up failed", extra={"error": str(exc)})
        sys.exit(f"wr-engine: {exc}")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

"""`wr-manager --config manager.toml`: load the config and run the manager until signalled."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

import uvloop

from runtime.logs import setup_logging
from runtime.manager.config import ManagerConfig, load_manager_config
from runtime.manager.errors import StartupError
from runtime.manager.server import ManagerServer
from runtime.telemetry import setup_tracing, shutdown_tracing
from runtime.tomlconfig import ConfigError
from runtime.version import __version__


async def _serve(config: ManagerConfig) -> None:
    server = ManagerServer(config)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wr-manager", description="wruntime control plane")
    # Required: the manager serves only mutual TLS, and its certificates are named in [tls].
    parser.add_argument("--config", required=True, help="manager.toml (with its [tls] table)")
    parser.add_argument("--version", action="version", version=f"wr-manager {__version__}")
    args = parser.parse_args(argv)
    try:
        config = load_manager_config(args.config)
    except ConfigError as exc:
        print(f"wr-manager: {exc}", file=sys.stderr)
        return 2
    setup_logging("wr-manager", config.log_level)
    setup_tracing("wr-manager", config.otlp_endpoint, config.trace_sample_ratio)
    try:
        uvloop.run(_serve(config))
    except StartupError as exc:
        print(f"wr-manager: {exc}", file=sys.stderr)
        return 1
    finally:
        # Stopping already: a second SIGTERM (a supervisor repeating itself) must not kill
        # the process while it flushes its spans; the loop's handlers are gone by now.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_IGN)
        with contextlib.suppress(Exception):
            shutdown_tracing()
    return 0


if __name__ == "__main__":
    sys.exit(main())

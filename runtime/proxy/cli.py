"""`wr-proxy --config proxy.toml`: load the config and run the proxy until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

import uvloop

from runtime.logs import setup_logging
from runtime.proxy.config import ProxyConfig, load_proxy_config
from runtime.proxy.peer_tls import PeerTlsError
from runtime.proxy.server import ProxyServer
from runtime.tomlconfig import ConfigError
from runtime.version import __version__


async def _serve(config: ProxyConfig) -> None:
    server = ProxyServer(config)
    await server.start()
    gc.freeze()  # what start-up allocated stays put: the collector need not scan it again
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logging.getLogger("wr-proxy").info("stopping")
    await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wr-proxy", description="wruntime node proxy")
    parser.add_argument("--config", required=True, help="path to proxy.toml")
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--version", action="version", version=f"wr-proxy {__version__}")
    args = parser.parse_args(argv)
    setup_logging("wr-proxy", args.log_level)
    try:
        config = load_proxy_config(args.config)
        uvloop.run(_serve(config))
    except (ConfigError, PeerTlsError) as exc:
        print(f"wr-proxy: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"wr-proxy: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

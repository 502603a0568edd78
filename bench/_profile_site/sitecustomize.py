"""Loaded only by bench/engine_profile.py's engine (PYTHONPATH): clocks around the worker's
steps of a request, one line per step to $WR_PROF_OUT ("pid step ms")."""

import os
import sys
import time

_OUT = os.environ.get("WR_PROF_OUT")


def _install() -> None:
    import threading

    from runtime.engine import cap_tracing, host, outbound

    out = open(f"{_OUT}.{os.getpid()}", "a", buffering=1)  # noqa: SIM115
    local = threading.local()

    def timed(owner, name, label):  # type: ignore[no-untyped-def]
        fn = getattr(owner, name)

        def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                key = getattr(local, "key", "?").split(".")[-1]
                out.write(f"{key}: {label} {(time.perf_counter() - t) * 1000:.4f}\n")

        setattr(owner, name, wrapper)

    if os.environ.get("WR_INLINE_MAX"):  # the crossover run sets the host's threshold
        from runtime import wire

        wire.INLINE_BODY_MAX = int(os.environ["WR_INLINE_MAX"])  # type: ignore[misc]
    timed(host.WasmHost, "run", "worker: run (all)")
    run = host.WasmHost.run

    def keyed(self, key, *args, **kwargs):  # type: ignore[no-untyped-def]
        local.key = key
        return run(self, key, *args, **kwargs)

    host.WasmHost.run = keyed
    timed(cap_tracing.TracingBinding, "_open", "tracing: start")
    timed(host.WasmHost, "_log_write", "log.write (host)")
    timed(host.WasmHost, "_instantiate", "worker: take instance + set WASI")
    timed(host, "call_handle", "worker: guest call")
    timed(host.WasmHost, "_body_outcome", "worker: read stdout")
    timed(host.WasmHost, "release", "worker: release (after the response)")
    timed(host.WasmHost, "_send", "send: host (all)")
    timed(outbound.ProxyClient, "prepare", "send: prepare (checks, body)")
    timed(outbound.ProxyClient, "_exchange", "send: HTTP exchange")
    timed(outbound.ProxyClient, "deliver", "send: deliver (exchange + reply file)")


if _OUT and "runtime.engine.worker" in " ".join(sys.orig_argv):
    _install()

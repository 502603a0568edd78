"""An engine outlives its proxy: the stopping proxy deregisters it (without the proxy it cannot
be reached), and the engine registers again through the next proxy when its heartbeat gets
NOT_FOUND. Real engine and proxy; the manager is the proxy tests' FakeManager."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.infra.process import wait_until
from tests.integration.engine.conftest import TRACING, Engine, module_toml
from tests.integration.proxy.support import FakeManager, ProxyProcess

pytestmark = pytest.mark.slow


def test_an_engine_that_outlives_its_proxy_registers_again(  # type: ignore[no-untyped-def]
    components,
    tmp_path: Path,
    fake_manager: FakeManager,
    start_engine: Callable[..., Engine],
) -> None:
    (tmp_path / "proxy").mkdir()
    proxy = ProxyProcess(tmp_path / "proxy", fake_manager, '[node]\nname = "node-test"\n')
    proxy.start()
    try:
        start_engine(
            module_toml("echo", components["echo"], capabilities=TRACING),
            proxy=f"http://127.0.0.1:{proxy.port}",
            control=f"127.0.0.1:{proxy.control_port}",
        )

        def registered() -> list[str]:
            return [r.registration.engine_id for r in fake_manager.registrations]

        [engine_id] = wait_until(registered, 30, "the engine to register through the proxy")
        proxy.stop()
        assert fake_manager.deregistrations == [engine_id]
        proxy.start_again()  # the same config: the engine's control address again
        wait_until(
            lambda: registered() == [engine_id, engine_id],
            30,
            "the engine to register again through the new proxy",
        )
        assert fake_manager.deregistrations == [engine_id]
    finally:
        proxy.stop()

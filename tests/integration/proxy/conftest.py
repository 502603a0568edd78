"""Fixtures for proxy tests: one fake manager and a few upstream engines per session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra.pki import ClusterPki
from tests.integration.proxy.support import BackgroundLoop, Engine, FakeManager, ProxyProcess


@pytest.fixture(scope="session")
def background() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def manager(pki: ClusterPki) -> Iterator[FakeManager]:
    fake = FakeManager(pki)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def engines(background: BackgroundLoop) -> Iterator[list[Engine]]:
    """Three engines, reset to answering 200 at once before each use by `engine_reset`."""
    started = [Engine(f"engine-{i}") for i in range(3)]
    for engine in started:
        background.run(engine.start())
    yield started
    for engine in started:
        background.run(engine.stop())


@pytest.fixture
def fresh_engines(engines: list[Engine]) -> list[Engine]:
    for engine in engines:
        engine.status, engine.delay = 200, 0.0
        engine.requests.clear()
        engine.failing.clear()
    return engines


@pytest.fixture(scope="session")
def shared_proxy(
    tmp_path_factory: pytest.TempPathFactory, manager: FakeManager, engines: list[Engine]
) -> Iterator[ProxyProcess]:
    """One wr-proxy (node "node-a", default settings) for the tests that need no special config;
    each test installs its own rules and waits for them with `wait_table`."""
    proxy = ProxyProcess(
        tmp_path_factory.mktemp("shared-proxy"), manager, '[node]\nname = "node-a"'
    )
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def start_proxy(tmp_path: Path, manager: FakeManager) -> Iterator[Callable[..., ProxyProcess]]:
    started: list[ProxyProcess] = []

    def start(
        extra_toml: str = "", name: str = "", env: dict[str, str] | None = None, **top: Any
    ) -> ProxyProcess:
        workdir = tmp_path / (name or f"proxy{len(started)}")
        workdir.mkdir()
        proxy = ProxyProcess(workdir, manager, extra_toml, env, **top)
        started.append(proxy)
        return proxy.start()

    yield start
    for proxy in started:
        proxy.stop()

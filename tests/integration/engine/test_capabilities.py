"""A module importing a capability it was not granted is refused at load with a clear error."""

from __future__ import annotations

import pytest

from tests.infra.process import wait_until
from tests.integration.engine.conftest import module_toml

pytestmark = pytest.mark.slow


def test_ungranted_db_import_stops_the_engine(components, start_engine) -> None:  # type: ignore[no-untyped-def]
    engine = start_engine(module_toml("with-db", components["with_db"]), wait=False)
    wait_until(lambda: not engine.process.running, 60, "the engine to refuse the module")
    assert engine.process.returncode != 0
    log = engine.process.log_tail()
    assert "module example.with-db: imports wruntime:db/database@0.4.0" in log
    assert 'not granted capability "db"' in log


def test_a_grant_the_node_cannot_provide_is_refused(components, start_engine) -> None:  # type: ignore[no-untyped-def]
    engine = start_engine(
        module_toml("with-db", components["with_db"], capabilities=["db"]), wait=False
    )
    wait_until(lambda: not engine.process.running, 60, "the engine to refuse the module")
    assert (
        'module example.with-db is granted capability "db", but this node\'s engine.toml '
        "does not set database.url" in engine.process.log_tail()
    )

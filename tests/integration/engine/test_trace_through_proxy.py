"""Issue 18 item 4 end to end on one machine: `wrctl invoke example.caller/run` through a real
wr-proxy and a real engine running the example guests, every service exporting to one OTLP
collector, gives one trace whose parent/child chain runs wrctl -> proxy -> caller engine ->
caller's guest span -> proxy -> echo engine -> echo's guest span.

The manager is the proxy tests' FakeManager (a routing table the test sets): the chain under
test is the data path, which a real manager does not touch."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.infra.otel import ReceivedSpan, SpanCollector
from tests.integration.engine.conftest import TRACING, Engine, module_toml
from tests.integration.proxy.support import FakeManager, ProxyProcess, rule

pytestmark = pytest.mark.slow

WRCTL = str(Path(sys.executable).parent / "wrctl")


def test_one_trace_from_wrctl_to_echos_guest_span(  # type: ignore[no-untyped-def]
    components,
    tmp_path: Path,
    fake_manager: FakeManager,
    start_engine: Callable[..., Engine],
    span_collector: SpanCollector,
) -> None:
    span_collector.clear()
    (tmp_path / "proxy").mkdir()
    proxy = ProxyProcess(
        tmp_path / "proxy",
        fake_manager,
        extra_toml=f'[tracing]\nendpoint = "{span_collector.endpoint}"\n',
    )
    engine = start_engine(
        module_toml("echo", components["echo"], capabilities=TRACING)
        + module_toml("caller", components["caller"], capabilities=TRACING),
        proxy=f"http://127.0.0.1:{proxy.port}",
        otlp=span_collector.endpoint,
    )
    try:
        proxy.start()
        proxy.wait_table(
            fake_manager.set_rules([rule(engine.base, "caller"), rule(engine.base, "echo")])
        )
        out = subprocess.run(
            [
                WRCTL,
                "invoke",
                "example.caller/run",
                "--proxy",
                f"127.0.0.1:{proxy.port}",
                "--data",
                "traced",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        proxy.stop()
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    # wrctl invoke --json nests a JSON answer as it is
    assert summary["status"] == 200 and summary["body"] == {"reply": "traced"}
    trace_id = summary["trace_id"]

    chain = [
        "wr-proxy example.caller",
        "POST example.caller",
        "caller.run",
        "wr-proxy example.echo",
        "POST example.echo",
        "echo.echo",
    ]
    spans = span_collector.wait_for(
        lambda got: set(chain) <= {s.name for s in got if s.trace_id == trace_id},
        deadline_s=20,
        what="the whole chain",
    )
    by_name: dict[str, ReceivedSpan] = {s.name: s for s in spans if s.trace_id == trace_id}
    assert len([s for s in spans if s.trace_id == trace_id]) == len(chain)
    first = by_name[chain[0]]
    assert first.parent_span_id is not None  # wrctl's own span id, made up per invoke
    assert first.service_name == "wr-proxy"
    for parent, child in itertools.pairwise(chain):
        assert by_name[child].parent_span_id == by_name[parent].span_id, f"{child} under {parent}"
    assert [by_name[n].service_name for n in chain] == [
        "wr-proxy",
        "wr-engine",
        "wr-engine",
        "wr-proxy",
        "wr-engine",
        "wr-engine",
    ]

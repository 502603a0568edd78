"""`wrctl jobs submit|status|list` and `wrctl schedules list` against a real manager (in
process, SQLite, dispatch off: these test what wrctl sends and shows, not the dispatch)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.api import wruntime_pb2 as pb
from runtime.manager.config import JobsConfig, ManagerConfig
from runtime.manager.server import ManagerServer
from runtime.wire import COMPONENT_HEADER
from tests.integration.manager.builders import KEY, KEY_ENV
from tests.integration.proxy.support import BackgroundLoop
from tests.unit.wrctl.fakemanager import manager_files
from wrctl.cli import app
from wrctl.credentials import CREDENTIALS_ENV
from wrctl.pki import cluster_ca

CLUSTER = """\
[cluster]
name = "c"

[[node]]
name = "a"
host = "local"

[[module]]
namespace = "shop"
name = "images"
version = "1.0.0"
component = "images.wasm"

[manager]
port = {port}
"""


@pytest.fixture
def cluster_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.delenv(CREDENTIALS_ENV, raising=False)
    monkeypatch.delenv("WR_MANAGER", raising=False)
    (tmp_path / "images.wasm").write_bytes(COMPONENT_HEADER + b"images")
    path = tmp_path / "cluster.toml"
    path.write_text(CLUSTER.format(port=1))
    tls = manager_files(cluster_ca(path, "c"), tmp_path / "m")
    config = ManagerConfig(
        listen_address="127.0.0.1:0",
        admin_address="127.0.0.1:0",
        state=f"sqlite://{tmp_path}/state.db",
        cluster="c",
        jobs=JobsConfig(dispatch=False),
        tls={
            "cert_path": tls.cert_path,
            "key_path": tls.key_path,
            "ca_cert_path": tls.ca_cert_path,
        },
    )
    loop = BackgroundLoop()
    server = ManagerServer(config, environ={KEY_ENV: KEY})
    loop.run(server.start())
    try:
        path.write_text(CLUSTER.format(port=server.grpc_port))
        schedule = pb.UpsertScheduleRequest(
            name="nightly",
            worker_namespace="shop",
            worker_name="images",
            job_type="cleanup",
            cron="0 3 * * *",
        )
        assert server.state is not None
        loop.run(server.state.upsert_schedule(schedule, 30))
        yield path
    finally:
        loop.run(server.stop(grace=0.5))
        loop.close()


def wrctl(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_submit_status_list(cluster_file: Path) -> None:
    c = ("-c", str(cluster_file))
    code, out = wrctl("jobs", "submit", "shop.images", "resize", "--data", '{"w": 64}', *c)
    assert code == 0, out
    job_id = out.split()[1]
    code, out = wrctl(
        "jobs", "submit", "shop.images", "resize", "--version", "1.0.0", "--json",
        "--idempotency-key", "k", *c,
    )  # fmt: skip
    assert code == 0, out
    assert json.loads(out)["existing"] is False
    code, out = wrctl("jobs", "status", job_id, "--json", *c)
    assert code == 0, out
    shown = json.loads(out)
    assert (shown["module"], shown["job_type"]) == ("shop.images", "resize")
    assert shown["state"] == "pending"
    assert (shown["attempt"], shown["max_attempts"], shown["version"]) == (0, 3, None)
    code, out = wrctl("jobs", "status", job_id, *c)
    assert code == 0 and "state:" in out and "pending" in out, out
    code, out = wrctl("jobs", "list", "--module", "shop.images", "--state", "pending", *c)
    assert code == 0, out
    assert job_id[:8] in out and "resize" in out
    code, out = wrctl("jobs", "list", "--state", "dead", "--json", *c)
    assert (code, json.loads(out)) == (0, [])


def test_bad_arguments_are_named(cluster_file: Path) -> None:
    c = ("-c", str(cluster_file))
    for args, problem in [
        (("jobs", "submit", "images", "resize"), "is not NAMESPACE.MODULE"),
        (("jobs", "submit", "shop.images", "a/b"), "is not a job type"),
        (("jobs", "submit", "shop.images", "r", "--data", "{nope"), "--data is not JSON"),
        (("jobs", "list", "--state", "done"), "'done' is not one of"),
        (("jobs", "status", "no-such-job"), "no job 'no-such-job'"),
    ]:
        code, out = wrctl(*args, *c)
        assert code != 0 and problem in out, (args, out)


def test_schedules_list(cluster_file: Path) -> None:
    code, out = wrctl("schedules", "list", "--json", "-c", str(cluster_file))
    assert code == 0, out
    [row] = json.loads(out)
    assert (row["name"], row["every"], row["module"]) == ("nightly", "0 3 * * *", "shop.images")
    assert row["last_fired_at"] is None and row["next_fire_at"].endswith("T03:00:00.000+00:00")
    code, out = wrctl("schedules", "list", "-c", str(cluster_file))
    assert code == 0 and "nightly" in out and "cleanup" in out, out

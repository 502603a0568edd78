"""The shop example end to end on the local target: its cluster.toml (addresses swapped for the
test PostgreSQL, S3 server and fake Messages API), a first apply that stops for the missing
secrets once the manager is up, the secrets, the apply that migrates and deploys, and
`wrctl invoke shop.client/demo` walking the database, the blobstore, the LLM with a tool call
and module-to-module calls; then the schedule apply wrote fires a job in the inventory."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import COLD, REPO, LocalCluster, free_ports, running_cluster
from tests.infra.fake_anthropic import FakeAnthropic, Reply, ToolCall
from tests.infra.postgres import PostgresServer
from tests.infra.process import wait_until
from tests.infra.s3 import S3Server

SHOP = REPO / "examples" / "shop"


def _cluster_toml(
    components: dict[str, Path],
    ports: dict[str, int],
    db_url: str,
    s3: S3Server,
    llm: FakeAnthropic,
) -> str:
    """examples/shop/cluster.toml with this run's addresses, ports and built components."""
    text = (SHOP / "cluster.toml").read_text()
    swaps = {
        '[manager]\nhost = "local"\n': (
            f'[manager]\nhost = "local"\nport = {ports["m"]}\nadmin_port = {ports["ma"]}\n'
        ),
        '[[node]]\nname = "local"\nhost = "local"\n': (
            '[[node]]\nname = "local"\nhost = "local"\n'
            + "".join(f"{k} = {ports[v]}\n" for k, v in _NODE_PORTS.items())
        ),
        'workdir = ".wruntime"': 'workdir = "wr"',
        "postgres://postgres@127.0.0.1:5432/shop": db_url,
        "http://127.0.0.1:9100": s3.endpoint_url,
        'access_key_id = "shop"': f'access_key_id = "{s3.access_key_id}"',
        "max_tokens_limit = 1024": f'max_tokens_limit = 1024\nbase_url = "{llm.base_url}"',
        'migrations = "inventory/migrations"': f'migrations = "{SHOP / "inventory/migrations"}"',
    }
    for name in ("inventory", "assistant", "client"):
        swaps[f'component = "build/{name}.wasm"'] = f'component = "{components["shop_" + name]}"'
    for old, new in swaps.items():
        assert old in text, f"examples/shop/cluster.toml no longer has {old!r}"
        text = text.replace(old, new)
    return text


_NODE_PORTS = {
    "data_port": "d",
    "control_port": "c",
    "admin_port": "a",
    "peer_port": "p",
    "engine_port": "e",
}


@pytest.fixture
def shop(
    tmp_path: Path,
    components: dict[str, Path],
    postgres: PostgresServer,
    s3_server: S3Server,
    fake_anthropic: FakeAnthropic,
) -> Iterator[LocalCluster]:
    ports = free_ports()
    db_url = postgres.create_database(f"shop_{os.getpid()}_{ports['m']}")
    s3_server.client().create_bucket(Bucket="shop-images")
    template = _cluster_toml(components, ports, db_url, s3_server, fake_anthropic)
    with running_cluster(tmp_path, template, ports["m"], ports["d"]) as cluster:
        yield cluster


def _ok(done: object) -> str:
    assert getattr(done, "returncode", 1) == 0, f"{done}"
    return str(getattr(done, "stdout", ""))


def test_the_shop_walks_db_blobstore_and_llm(
    shop: LocalCluster, s3_server: S3Server, fake_anthropic: FakeAnthropic
) -> None:
    assert _ok(shop.wrctl("validate")).strip()
    plan = _ok(shop.wrctl("plan"))  # the manager is not there yet; the database is
    assert "+ database.shop" in plan, plan
    assert "V1__create_items.sql" in plan and "V2__add_image_key.sql" in plan, plan

    # The first apply starts the manager, then stops before any node: the secrets the
    # capabilities need are not stored yet (there was no manager to store them in).
    first = shop.wrctl("apply", "--auto-approve", *COLD)
    assert first.returncode == 1, first
    said = first.stdout + first.stderr
    for key in ("s3-secret", "anthropic-key"):
        assert f"wrctl secrets set shop {key}" in said, said
    _ok(shop.wrctl("secrets", "set", "shop", "s3-secret", stdin=s3_server.secret_access_key))
    _ok(shop.wrctl("secrets", "set", "shop", "anthropic-key", stdin=fake_anthropic.api_key))

    _ok(shop.wrctl("apply", "--auto-approve", *COLD))

    # the model asks for the item, then answers with what the inventory said
    fake_anthropic.script(
        Reply(text="", tool_calls=[ToolCall("toolu_1", "find_item", {"sku": "mug"})]),
        Reply(text="The Blue mug costs 12.50."),
    )
    done = _ok(shop.wrctl("invoke", "shop.client/demo", "--json", timeout=120))
    reply = json.loads(done)
    assert reply["status"] == 200, reply
    body = reply["body"]
    assert isinstance(body, dict), reply
    assert body["added"] == {
        "sku": "mug",
        "name": "Blue mug",
        "price": "12.50",
        "stock": 10,
        "image": None,
    }
    assert body["image_sha256_matches"] is True
    assert body["stock_after_reserve"] == 7
    assert body["assistant"]["answer"] == "The Blue mug costs 12.50."
    assert body["assistant"]["lookups"] == 1

    sent = [r.body for r in fake_anthropic.requests]
    assert [s["tools"][0]["name"] for s in sent] == ["find_item", "find_item"]
    tool_result = sent[1]["messages"][-1]["content"][0]
    assert tool_result["type"] == "tool_result" and tool_result["tool_use_id"] == "toolu_1"
    assert '"price": "12.50"' in str(tool_result["content"])  # what the inventory answered

    # the image is in the bucket under the key the row names
    head = s3_server.client().head_object(Bucket="shop-images", Key="items/mug")
    assert head["ContentLength"] == 1 << 20
    key = fake_anthropic.api_key.encode()
    for path in (shop.root / "wr").rglob("*"):  # logs, configs, bundles: no API key anywhere
        if path.is_file() and path.suffix not in {".wasm", ".cwasm", ".whl"}:
            assert key not in path.read_bytes(), path

    # the same item again: the database refuses it by its primary key, the module says so
    again = shop.wrctl(
        "invoke",
        "shop.inventory/items/add",
        "-d",
        json.dumps({"sku": "mug", "name": "x", "price": "1", "stock": 1}),
    )
    assert again.returncode == 1 and "items_pkey" in again.stdout + again.stderr, again

    # apply wrote the schedule; the manager fired it at once (its engine was up): the job ran
    # in inventory and wrote its report to the bucket
    def report() -> dict[str, object] | None:
        with contextlib.suppress(Exception):
            got = s3_server.client().get_object(Bucket="shop-images", Key="reports/low-stock.json")
            return dict(json.loads(got["Body"].read()))
        return None

    assert wait_until(report, 60.0, "the low-stock report in the bucket")["below"] == 5
    listed = json.loads(_ok(shop.wrctl("schedules", "list", "--json")))
    assert isinstance(listed, list), listed
    (low,) = [s for s in listed if s["name"] == "low-stock-report"]
    assert low["last_fired_at"] and low["consecutive_failures"] == 0, low

    # nothing left to do: migrations applied, secrets held, modules running
    settled = shop.wrctl("plan", "--detailed-exitcode")
    assert settled.returncode == 0, settled
    assert re.search(r"No changes", settled.stdout), settled.stdout

"""Module migrations on wrctl's side, without a database: file names, the directory rules
`wrctl validate` applies, statement location for errors, the applied-vs-local comparison, and
how a plan shows namespaces and pending migrations (text, golden, JSON)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from runtime.wire import COMPONENT_HEADER
from wrctl.config import load_cluster, load_targets
from wrctl.db.files import (
    line_of,
    parse_name,
    read_migrations,
    split_statements,
    statement_at,
)
from wrctl.db.history import NamespaceState, compare
from wrctl.deploy.apply import _work
from wrctl.errors import ConfigError
from wrctl.plan import make_plan, render_json, render_text
from wrctl.plan.database import live_resources
from wrctl.plan.state import ClusterState

GOLDEN = Path(__file__).parent / "golden"
CLUSTER = """\
[cluster]
name = "shop"

[defaults]
format = "supervisor"

[[node]]
name = "node-a"
host = "local"

[database]
url = "postgres://admin@db.internal:5432/shop"

[[module]]
namespace = "shop-a"
name = "inventory"
version = "1.0.0"
component = "inventory.wasm"
capabilities = ["db"]
migrations = "migrations/"
"""
V1 = "CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);\n"
V2 = "ALTER TABLE items ADD COLUMN price numeric(10, 2);\n"


def _cluster(tmp_path: Path, files: dict[str, str | bytes], text: str = CLUSTER) -> Path:
    (tmp_path / "inventory.wasm").write_bytes(COMPONENT_HEADER + b"inventory")
    directory = tmp_path / "migrations"
    directory.mkdir(exist_ok=True)
    for name, content in files.items():
        path = directory / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    (tmp_path / "cluster.toml").write_text(text)
    return tmp_path / "cluster.toml"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("V1__create_items.sql", 1),
        ("V20__add-price.sql", 20),
        ("V0__zero.sql", "between 1 and"),
        ("V1_one_underscore.sql", "is not a migration file name"),
        ("v1__lower.sql", "is not a migration file name"),
        ("V1__.sql", "is not a migration file name"),
        ("V1__with space.sql", "is not a migration file name"),
        ("V99999999999__huge.sql", "between 1 and 2147483647"),
    ],
)
def test_file_names(name: str, expected: int | str) -> None:
    found = parse_name(name)
    if isinstance(expected, int):
        assert found == expected
    else:
        assert isinstance(found, str) and expected in found and name in found


def test_a_directory_reads_in_version_order_with_gaps_and_other_files_left_alone(
    tmp_path: Path,
) -> None:
    _cluster(tmp_path, {"V10__later.sql": V2, "V2__first.sql": V1, "README.md": "notes"})
    files = read_migrations(tmp_path / "migrations")
    assert [(f.version, f.name) for f in files] == [(2, "V2__first.sql"), (10, "V10__later.sql")]
    assert files[0].checksum.startswith("sha256:") and files[0].sql == V1


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"V1__a.sql": V1, "V01__b.sql": V2}, "V1__a.sql and V01__b.sql both have version 1"),
        ({"V1__a.sql": V1, "2__b.sql": V2}, "'2__b.sql' is not a migration file name"),
        ({"V1__a.sql": b"\xff\xfe bad"}, "V1__a.sql is not UTF-8 text"),
    ],
)
def test_validate_names_the_bad_file_at_the_migrations_key(
    tmp_path: Path, files: dict[str, str | bytes], message: str
) -> None:
    path = _cluster(tmp_path, files)
    with pytest.raises(ConfigError) as err:
        load_cluster(path)
    text = str(err.value)
    line = CLUSTER.splitlines().index('migrations = "migrations/"') + 1
    assert f"cluster.toml:{line}:" in text and "module[0].migrations" in text
    assert message in text


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    path = _cluster(tmp_path, {}, CLUSTER.replace('"migrations/"', '"nowhere/"'))
    with pytest.raises(ConfigError, match=r"migrations directory .*nowhere does not exist"):
        load_cluster(path)


def test_a_good_directory_validates(tmp_path: Path) -> None:
    path = _cluster(tmp_path, {"V1__create_items.sql": V1, "V3__gap_is_fine.sql": V2})
    assert load_cluster(path).module[0].migrations == "migrations/"


SCRIPT = """\
-- a comment; with a semicolon
CREATE TABLE t (a text DEFAULT 'x;y', "we;ird" int);
/* block; /* nested; */ still */
CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;
INSERT INTO t (a) VALUES (E'it\\'s; fine');
SELECT 1
"""


def test_statements_are_split_past_quotes_and_comments() -> None:
    statements = split_statements(SCRIPT)
    assert [s.text.split()[:2] for s in statements] == [
        ["CREATE", "TABLE"],
        ["CREATE", "FUNCTION"],
        ["INSERT", "INTO"],
        ["SELECT", "1"],
    ]
    assert [s.line(SCRIPT) for s in statements] == [2, 4, 5, 6]
    assert "DEFAULT 'x;y', \"we;ird\" int);" in statements[0].text
    assert "$body$ SELECT 1; $body$" in statements[1].text
    position = SCRIPT.index("VALUES") + 1  # 1-based, as PostgreSQL reports it
    found = statement_at(SCRIPT, position)
    assert found is not None and found.text.startswith("INSERT INTO t")
    assert line_of(SCRIPT, position) == 5


def test_comments_alone_are_no_statement() -> None:
    assert split_statements("-- nothing\n/* here */ ;\n") == []


def test_the_history_comparison() -> None:
    local = {1: ("V1__a.sql", "sha256:1"), 2: ("V2__b.sql", "sha256:2")}
    assert compare("m", local, {}).pending == [1, 2]
    assert compare("m", local, {1: ("V1__a.sql", "sha256:1")}).pending == [2]
    changed = compare("m", local, {1: ("V1__a.sql", "sha256:X")})
    assert changed.problems == [
        "m: V1__a.sql changed since it was applied (sha256:X then, sha256:1 now); it will not "
        "run again: put the change in a new version"
    ]
    renamed = compare("m", local, {1: ("V1__old.sql", "sha256:1")})
    assert "version 1 was applied as V1__old.sql, now it is V1__a.sql" in renamed.problems[0]
    gone = compare("m", {2: local[2]}, {1: local[1], 2: local[2]})
    assert "V1__a.sql was applied but is no longer there" in gone.problems[0]
    late = compare("m", local, {2: local[2]})
    assert "V1__a.sql is pending but V2__b.sql ran already" in late.problems[0]


def _plan_text(path: Path, live: ClusterState) -> tuple[str, dict[str, object]]:
    plan = make_plan(load_targets(path), live, "0.1.0")
    data = render_json(plan.actions, 0, "shop", plan.drift)
    return render_text(plan.actions, plan.drift), data


def _live(path: Path, state: NamespaceState, secrets: frozenset[str] = frozenset()) -> ClusterState:
    config = load_targets(path).config
    resources = {r.address: r for r in live_resources(config, {"shop-a": state}, secrets)}
    return ClusterState(resources=resources, reachable=False, secrets=secrets)


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"plan output differs from {path} (UPDATE_GOLDEN=1 to accept)"


def test_a_new_namespace_and_its_pending_migrations_are_planned(tmp_path: Path) -> None:
    path = _cluster(tmp_path, {"V1__create_items.sql": V1, "V2__add_price.sql": V2})
    text, data = _plan_text(path, _live(path, NamespaceState(role=False, schema=False)))
    _check_golden("database_create", text)
    assert data["summary"] == {"add": 4, "change": 1, "destroy": 0, "drift": 0}
    actions = {a["address"]: a for a in data["actions"]}  # type: ignore[attr-defined]
    migration = actions["migration.shop-a.inventory"]
    assert migration["action"] == "update" and migration["reason"] == "2 pending migrations"
    assert [c["attribute"] for c in migration["changes"]] == [
        "V1__create_items.sql",
        "V2__add_price.sql",
    ]
    assert actions["database.shop-a"]["action"] == "create"
    # the database comes before the nodes that may need its tables
    assert list(actions).index("migration.shop-a.inventory") < list(actions).index("node.node-a")


def test_apply_runs_the_database_step_for_the_planned_namespaces_only(tmp_path: Path) -> None:
    path = _cluster(tmp_path, {"V1__create_items.sql": V1})
    plan = make_plan(load_targets(path), _live(path, NamespaceState(False, False)), "0.1.0")
    work = _work(plan)
    assert work.databases == {"shop-a"} and work.nodes == ["node-a"] and work.manager
    text = CLUSTER.replace('capabilities = ["db"]\nmigrations = "migrations/"\n', "")
    plain = _cluster(tmp_path, {}, text)
    assert _work(make_plan(load_targets(plain), ClusterState({}, reachable=False))).databases == (
        frozenset()
    )


def test_only_the_pending_file_is_a_change(tmp_path: Path) -> None:
    path = _cluster(tmp_path, {"V1__create_items.sql": V1, "V2__add_price.sql": V2})
    v1 = read_migrations(tmp_path / "migrations")[0]
    state = NamespaceState(True, True, {"inventory": {1: (v1.name, v1.checksum)}})
    live = _live(path, state, frozenset({"shop-a/wr-db-password"}))
    plan = make_plan(load_targets(path), live, "0.1.0")
    [migration] = [a for a in plan.actions if a.resource_kind == "migration"]
    assert [c.attribute for c in migration.changes] == ["V2__add_price.sql"]
    assert migration.reason == "1 pending migration" and migration.unchanged == 1
    assert not [a for a in plan.actions if a.resource_kind == "database"]
    # the role without its stored password: the password is to be made
    live = _live(path, state)
    [database] = [a for a in make_plan(load_targets(path), live).actions if a.kind == "update"][:1]
    assert database.address == "database.shop-a"
    assert [(c.attribute, c.new) for c in database.changes] == [
        ("password", "(secret wr-db-password)")
    ]


def test_an_applied_file_that_changed_stops_the_plan(tmp_path: Path) -> None:
    path = _cluster(tmp_path, {"V1__create_items.sql": V1})
    state = NamespaceState(True, True, {"inventory": {1: ("V1__create_items.sql", "sha256:0")}})
    with pytest.raises(ConfigError, match=r"V1__create_items\.sql changed since it was applied"):
        make_plan(load_targets(path), _live(path, state))


def test_no_db_module_means_no_database_resources(tmp_path: Path) -> None:
    text = CLUSTER.replace('capabilities = ["db"]\nmigrations = "migrations/"\n', "")
    path = _cluster(tmp_path, {}, text)
    plan = make_plan(load_targets(path), ClusterState(resources={}, reachable=False))
    assert json.dumps(render_json(plan.actions, 0, "shop")).count("database") == 0

"""Request validation names the offending field."""

from __future__ import annotations

import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.manager import validation as check
from runtime.manager.errors import InvalidArgument
from runtime.manager.health_monitor import tick_interval
from runtime.manager.store import redact_url
from runtime.manager.store.sqlite import _statements, _to_sqlite


def test_valid_registration_passes() -> None:
    reg = pb.EngineRegistration(
        engine_id="5f0c-engine",
        address="http://127.0.0.1:9100",
        peer_address="https://10.0.0.1:9443",
        node="node-a",
        modules=[pb.ModuleDescriptor(namespace="example", name="echo", version="1.0.0-rc.1")],
        secrets=[pb.SecretRequest(namespace="example", key="API_KEY")],
        db_namespaces=["shop"],
    )
    check.registration(reg)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: check.name("", "namespace"), "namespace"),
        (lambda: check.name("a" * 25, "name"), "name"),
        (lambda: check.name("-x", "name"), "name"),
        (lambda: check.version("1", "version"), "version"),
        (lambda: check.identifier("has space", "engine_id"), "engine_id"),
        (lambda: check.secret_key("a/b", "key"), "key"),
        (lambda: check.digest("sha256:XYZ", "digest", required=True), "digest"),
        (lambda: check.digest("", "bundle_digest", required=True), "bundle_digest"),
        # whole values only: a trailing newline is not ignored (issue 17)
        (lambda: check.name("echo\n", "name"), "name"),
        (lambda: check.identifier("engine-1\n", "engine_id"), "engine_id"),
        (lambda: check.secret_key("API_KEY\n", "key"), "key"),
        (lambda: check.digest("sha256:" + "a" * 64 + "\n", "digest", required=True), "digest"),
        (lambda: check.target("Node", "target"), "target"),
        (lambda: check.lock_ttl(999_999), "ttl_secs"),
        (lambda: check.secret_value("x" * 70_000), "value"),
    ],
)
def test_errors_start_with_the_field(call: object, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        call()  # type: ignore[operator]
    assert str(err.value).startswith(f"{field}:")


def test_lock_ttl_default_and_manager_target() -> None:
    assert check.lock_ttl(0) == 60
    assert check.target("manager", "target") == "manager"
    assert check.digest("", "previous", required=False) == ""


def test_sqlite_placeholders_and_statement_split() -> None:
    assert _to_sqlite("SELECT $1, $2, $1") == "SELECT ?1, ?2, ?1"
    script = "CREATE TABLE a (x INT); -- a comment; with a semicolon\nINSERT INTO a VALUES (1);\n"
    assert _statements(script) == ["CREATE TABLE a (x INT)", "INSERT INTO a VALUES (1)"]


def test_store_urls_are_logged_without_passwords() -> None:
    assert redact_url("postgresql://wr:s3cret@db:5432/x") == "postgresql://wr:***@db:5432/x"
    assert redact_url("postgresql://wr@db/x") == "postgresql://wr@db/x"
    assert redact_url("sqlite:///var/lib/wruntime/manager.db").endswith("manager.db")


def test_monitor_ticks_five_times_per_timeout_within_bounds() -> None:
    assert tick_interval(30, 30) == 5.0
    assert tick_interval(1, 2) == 0.2
    assert tick_interval(600, 600) == 5.0
    assert tick_interval(0.01, 0.01) == 0.05

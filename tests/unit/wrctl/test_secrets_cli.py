"""`wrctl secrets`: values from stdin, a file or a hidden prompt, never an argument, never
printed; listings name versions and granted modules. Against a fake manager over mTLS."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from runtime.wire import COMPONENT_HEADER
from tests.unit.wrctl.fakemanager import FakeManager, serving
from wrctl.cli import app
from wrctl.config import load_cluster
from wrctl.credentials import CREDENTIALS_ENV
from wrctl.pki import cluster_ca
from wrctl.secrets import SecretValueError, granted_modules, read_value

VALUE = "s3cr3t-Value-Never-Shown"
CLUSTER = """\
[cluster]
name = "c"

[[node]]
name = "a"
host = "local"

[[module]]
namespace = "shop"
name = "pay"
version = "1.2.0"
component = "pay.wasm"
env = {{ KEY = {{ secret = "api-key" }}, TOKEN = {{ secret = "token" }}, LEVEL = "info" }}

[[module]]
namespace = "shop"
name = "audit"
version = "2.0.0"
component = "pay.wasm"
env = {{ K = {{ secret = "api-key" }} }}

[manager]
port = {port}
"""


@pytest.fixture
def manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, FakeManager]]:
    monkeypatch.delenv(CREDENTIALS_ENV, raising=False)
    monkeypatch.delenv("WR_MANAGER", raising=False)
    (tmp_path / "pay.wasm").write_bytes(COMPONENT_HEADER + b"pay")
    path = tmp_path / "cluster.toml"
    path.write_text(CLUSTER.format(port=1))
    with serving(cluster_ca(path, "c"), tmp_path / "m") as (address, fake):
        path.write_text(CLUSTER.format(port=address.rsplit(":", 1)[1]))
        yield path, fake


def _run(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def test_set_list_delete_round_trip_never_shows_the_value(
    manager: tuple[Path, FakeManager],
) -> None:
    path, fake = manager
    code, output = _run("secrets", "set", "shop", "api-key", "-c", str(path), stdin=VALUE + "\n")
    assert code == 0, output
    assert "Secret shop/api-key version 1 stored" in output and VALUE not in output
    assert fake.secrets[("shop", "api-key")][0] == VALUE  # one trailing newline dropped
    _run("secrets", "set", "shop", "api-key", "-c", str(path), stdin=VALUE + "2")
    code, output = _run("secrets", "list", "-c", str(path))
    assert code == 0, output
    assert VALUE not in output
    row = next(line for line in output.splitlines() if "api-key" in line)
    assert "│ 2 " in row and "shop.audit@2.0.0" in row and "shop.pay@1.2.0" in output
    assert "token" in output and "missing" in output  # named by cluster.toml, not held
    code, output = _run("secrets", "list", "shop", "-c", str(path), "--json")
    listed = json.loads(output)
    assert VALUE not in output
    assert listed[0] | {"updated": None} == {
        "namespace": "shop",
        "name": "api-key",
        "version": 2,
        "updated": None,
        "modules": ["shop.audit@2.0.0", "shop.pay@1.2.0"],
        "missing": False,
    }
    assert listed[1]["name"] == "token" and listed[1]["missing"] is True
    code, output = _run("secrets", "delete", "shop", "api-key", "-c", str(path), stdin="y\n")
    assert code == 1 and "--auto-approve" in output  # asks, and stdin is no terminal
    assert ("shop", "api-key") in fake.secrets
    code, output = _run("secrets", "delete", "shop", "api-key", "-c", str(path), "--yes")
    assert code == 0, output
    assert ("shop", "api-key") not in fake.secrets


def test_set_from_a_file_and_refusals(manager: tuple[Path, FakeManager], tmp_path: Path) -> None:
    path, fake = manager
    value_file = tmp_path / "value"
    value_file.write_text(VALUE)
    code, output = _run(
        "secrets", "set", "shop", "token", "--from-file", str(value_file), "-c", str(path)
    )
    assert code == 0, output
    assert fake.secrets[("shop", "token")][0] == VALUE
    code, output = _run("secrets", "set", "shop", "empty", "-c", str(path), stdin="")
    assert code == 1 and "is empty; nothing was stored" in output
    assert ("shop", "empty") not in fake.secrets
    code, output = _run("secrets", "set", "shop", "x", VALUE, "-c", str(path))
    assert code == 1 and ("shop", "x") not in fake.secrets  # no value argument exists
    code, output = _run("secrets", "delete", "shop", "nope", "-c", str(path), "--yes")
    assert code == 1 and "holds no such secret" in output


def test_read_value_prompts_twice_on_a_terminal() -> None:
    answers = iter(["hidden", "hidden"])
    prompts: list[str] = []

    def prompt(text: str) -> str:
        prompts.append(text)
        return next(answers)

    assert read_value("ns/k", stdin=io.BytesIO(), is_tty=True, prompt=prompt) == "hidden"
    assert prompts == ["Value for ns/k (hidden): ", "Again, to confirm ns/k: "]
    differ = iter(["a", "b"])
    with pytest.raises(SecretValueError, match="differ"):
        read_value("ns/k", stdin=io.BytesIO(), is_tty=True, prompt=lambda _: next(differ))


def test_read_value_refuses_binary_and_oversized_values(tmp_path: Path) -> None:
    with pytest.raises(SecretValueError, match="not UTF-8"):
        read_value("ns/k", stdin=io.BytesIO(b"\xff\xfe"), is_tty=False)
    with pytest.raises(SecretValueError, match="exceeds"):
        read_value("ns/k", stdin=io.BytesIO(b"x" * 70000), is_tty=False)
    with pytest.raises(SecretValueError, match="--from-file"):
        read_value("ns/k", from_file=tmp_path / "absent")
    assert read_value("ns/k", stdin=io.BytesIO(b"a\nb\r\n"), is_tty=False) == "a\nb"


def test_granted_modules_are_those_whose_env_names_the_secret(
    manager: tuple[Path, FakeManager],
) -> None:
    config = load_cluster(manager[0])
    assert granted_modules(config, "shop", "token") == ["shop.pay@1.2.0"]
    assert granted_modules(config, "other", "token") == []


def test_status_lists_every_certificate_with_its_expiry(
    manager: tuple[Path, FakeManager],
) -> None:
    path, _ = manager
    port = load_cluster(path).manager.port
    code, output = _run("status", "--json", "-c", str(path), "--manager", f"127.0.0.1:{port}")
    assert code == 0, output
    shown = json.loads(output)["certificates"]
    assert [c["certificate"] for c in shown][:2] == ["CA", "manager"]
    assert shown[2]["certificate"].startswith("operator ")
    assert all(c["days_left"] >= 364 and c["warning"] == "" for c in shown)
    code, output = _run("status", "-c", str(path), "--manager", f"127.0.0.1:{port}")
    assert code == 0 and "days left" in output and "wruntime://c/operator/" in output

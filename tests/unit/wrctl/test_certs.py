"""`wrctl cert ca|issue|rotate`, the node `tls` attribute a rotation changes in the plan,
what apply makes of such a plan, and the certificate report of `wrctl status`."""

from __future__ import annotations

import datetime
import json
import stat
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography import x509
from typer.testing import CliRunner

from runtime.api import wruntime_pb2 as pb
from runtime.identity import identity_of
from runtime.wire import COMPONENT_HEADER
from wrctl.certs import CertInfo, certificate_report
from wrctl.cli import app
from wrctl.commands.bundle import tls_note
from wrctl.config import load_cluster, load_targets
from wrctl.config.model import ModuleSection
from wrctl.deploy.apply import _work, secret_grants
from wrctl.pki import cluster_ca, pki_dir
from wrctl.plan import ActionKind, diff, resolve
from wrctl.plan.desired import RENEWED, TLS_ATTRIBUTE

CLUSTER = """\
[cluster]
name = "c"

[[node]]
name = "a"
host = "local"

[[node]]
name = "b"
host = "10.0.0.7"

[[module]]
namespace = "shop"
name = "pay"
version = "1.2.0"
component = "pay.wasm"
nodes = ["a"]
env = { KEY = { secret = "api-key" }, LEVEL = "info", OTHER = { secret = "token" } }
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Path:
    (tmp_path / "pay.wasm").write_bytes(COMPONENT_HEADER + b"pay")
    path = tmp_path / "cluster.toml"
    path.write_text(CLUSTER)
    return path


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _uri(path: Path) -> str:
    identity = identity_of(x509.load_pem_x509_certificate(path.read_bytes()))
    return identity.uri if identity else ""


def test_cert_ca_shows_subject_fingerprint_and_expiry(cluster: Path) -> None:
    code, output = _run("cert", "ca", "-c", str(cluster), "--json")
    assert code == 0, output
    shown = json.loads(output)
    ca = cluster_ca(cluster, "c")
    assert shown["subject"] == "CN=wruntime cluster c CA"
    assert shown["fingerprint"].startswith("sha256:") and len(shown["fingerprint"]) == 71
    assert shown["days_left"] >= 3649 and shown["can_issue"] is True
    assert shown["path"] == str(ca.directory / "ca.crt")
    code, output = _run("cert", "ca", "-c", str(cluster))
    assert shown["fingerprint"] in output and "days left" in output


def test_cert_issue_operator_writes_0600_and_refuses_to_overwrite(
    cluster: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bob"
    code, output = _run("cert", "issue", "--operator", "bob", "--out", str(out), "-c", str(cluster))
    assert code == 0, output
    assert sorted(p.name for p in out.iterdir()) == ["ca.crt", "operator.crt", "operator.key"]
    assert stat.S_IMODE((out / "operator.key").stat().st_mode) == 0o600
    assert _uri(out / "operator.crt") == "wruntime://c/operator/bob"
    assert "WR_CREDENTIALS" in output
    key = (out / "operator.key").read_bytes()
    code, output = _run("cert", "issue", "--operator", "bob", "--out", str(out), "-c", str(cluster))
    assert code == 1 and "already exist" in output and "--force" in output
    assert (out / "operator.key").read_bytes() == key
    code, _ = _run(
        "cert", "issue", "--operator", "bob", "--out", str(out), "-c", str(cluster), "--force"
    )
    assert code == 0 and (out / "operator.key").read_bytes() != key
    assert stat.S_IMODE((out / "operator.key").stat().st_mode) == 0o600
    # the other operator's key is its holder's: the CA dir keeps no copy
    assert not list(pki_dir(cluster, "c").glob("*bob*"))


def test_cert_issue_for_offline_nodes_and_managers(cluster: Path, tmp_path: Path) -> None:
    code, output = _run(
        "cert", "issue", "--node", "b", "--host", "10.0.0.7", "--out", str(tmp_path / "n"),
        "-c", str(cluster),
    )  # fmt: skip
    assert code == 0, output
    assert _uri(tmp_path / "n" / "node.crt") == "wruntime://c/node/b"
    cert = x509.load_pem_x509_certificate((tmp_path / "n" / "node.crt").read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.0.0.7" in [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
    code, output = _run(
        "cert", "issue", "--manager", "--host", "mgr.example", "--out", str(tmp_path / "m"),
        "-c", str(cluster),
    )  # fmt: skip
    assert code == 0, output
    assert _uri(tmp_path / "m" / "manager.crt") == "wruntime://c/manager/manager"
    for bad in (
        ["--node", "b"],  # no --host
        ["--operator", "x", "--manager", "--host", "h"],
        ["--operator", "x", "--host", "h"],
        [],
    ):
        code, output = _run("cert", "issue", *bad, "--out", str(tmp_path / "z"), "-c", str(cluster))
        assert code == 1, (bad, output)


def test_rotate_archives_the_old_pair_and_the_plan_updates_only_tls(cluster: Path) -> None:
    targets = load_targets(cluster)
    ca = cluster_ca(cluster, "c")
    ca.node_credentials("a", "127.0.0.1")
    ca.node_credentials("b", "10.0.0.7")
    before = resolve(targets, "0.1.0")
    old = before.resources["node.a"].attributes[TLS_ATTRIBUTE]
    old_key = (ca.directory / "node-a.key").read_bytes()
    code, output = _run("cert", "rotate", "--node", "a", "-c", str(cluster))
    assert code == 0, output
    (archive,) = (ca.directory / "archive").iterdir()
    assert (archive / "node-a.key").read_bytes() == old_key
    assert stat.S_IMODE((archive / "node-a.key").stat().st_mode) == 0o600
    assert not (archive / "node-b.crt").exists()  # only the node asked for
    after = resolve(targets, "0.1.0")
    new = after.resources["node.a"].attributes[TLS_ATTRIBUTE]
    assert new != old and new in output
    actions = diff(after, replace(before, reachable=False))  # no engines to judge: no drift
    assert [(a.address, a.kind) for a in actions] == [("node.a", ActionKind.UPDATE)]
    assert [(c.attribute, c.old, c.new) for c in actions[0].changes] == [("tls", old, new)]
    work = _work(SimpleNamespace(actions=actions, drift=()))  # type: ignore[arg-type]
    assert work.nodes == ["a"] and work.certificate_only == {"a"}


def test_no_certificate_yet_means_no_tls_attribute_and_a_moved_node_is_renewed(
    cluster: Path,
) -> None:
    targets = load_targets(cluster)
    assert TLS_ATTRIBUTE not in resolve(targets, "0.1.0").resources["node.a"].attributes
    cluster_ca(cluster, "c").node_credentials("b", "10.0.0.99")  # issued for another address
    assert resolve(targets, "0.1.0").resources["node.b"].attributes[TLS_ATTRIBUTE] == RENEWED


def test_a_change_beside_the_certificate_redeploys() -> None:
    from wrctl.plan.diff import Action, Change

    both = Action(
        "node.a",
        ActionKind.UPDATE,
        "node",
        (Change("tls", "x", "y"), Change("engines", "1", "2")),
        0,
        ("a",),
    )
    module = Action(
        "module.s.m", ActionKind.UPDATE, "module", (Change("tls", "x", "y"),), 0, ("a",)
    )
    work = _work(SimpleNamespace(actions=[both, module], drift=()))  # type: ignore[arg-type]
    assert work.nodes == ["a"] and work.certificate_only == frozenset()


def test_secret_grants_name_each_module_and_key(cluster: Path) -> None:
    modules = load_targets(cluster).node("a").modules
    assert secret_grants(modules, {}) == [
        pb.SecretGrant(module="shop.pay@1.2.0", namespace="shop", key="api-key"),
        pb.SecretGrant(module="shop.pay@1.2.0", namespace="shop", key="token"),
    ]
    assert secret_grants(load_targets(cluster).node("b").modules, {}) == []


def test_secret_grants_cover_what_granted_capabilities_need() -> None:
    module = ModuleSection.model_validate(
        {
            "namespace": "shop",
            "name": "inv",
            "version": "1.0.0",
            "component": "x.wasm",
            "capabilities": ["db", "llm", "tracing"],
        }
    )
    config = {"llm": {"api_key": {"secret": "anthropic"}, "base_url": "http://x"}}
    assert {g.key for g in secret_grants([module], config)} == {"wr-db-password", "anthropic"}


def test_certificate_report_and_its_warnings(cluster: Path) -> None:
    ca = cluster_ca(cluster, "c")
    ca.node_credentials("a", "127.0.0.1")
    ca.manager_credentials([])
    operator = ca.operator_credentials("me")
    (ca.directory / "operator.crt").write_bytes(operator.cert_pem)
    config = load_cluster(cluster)
    report = certificate_report(
        ca.directory, [n.name for n in config.node], ca.paths("operator")[0]
    )
    assert [c.label for c in report] == ["CA", "manager", "operator me", "node a"]
    assert all(c.warning == "" for c in report)
    now = datetime.datetime.now(datetime.UTC)
    soon = CertInfo(
        "node x", "p", "CN=x", "", "sha256:0", now + datetime.timedelta(days=12, hours=1)
    )
    assert soon.warning == "expires in 12 days"
    gone = CertInfo("node x", "p", "CN=x", "", "sha256:0", now - datetime.timedelta(days=3))
    assert gone.warning.startswith("expired") and gone.to_json()["days_left"] < 0


def test_bundle_output_says_how_to_get_tls_files(cluster: Path) -> None:
    note = tls_note(load_targets(cluster), ["manager", "node-a", "node-b"])
    assert "not in the bundles" in note
    assert "manager: wrctl cert issue --manager --host 127.0.0.1 --out DIR" in note
    assert "node-b: wrctl cert issue --node b --host 10.0.0.7 --out DIR" in note

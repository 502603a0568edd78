"""What apply tells the manager: a pending release (modules and secret grants) before a node
is touched, grants on every record, and a certificate-only change that uploads the new
files, records the fingerprint and restarts nothing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from runtime.api import wruntime_pb2 as pb
from runtime.wire import COMPONENT_HEADER
from wrctl.bundle.build import Bundle
from wrctl.config import load_targets
from wrctl.deploy.apply import _Apply
from wrctl.pki import cluster_ca
from wrctl.plan import make_plan
from wrctl.plan.live import RESOURCES_KEY, nothing_yet

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
env = { KEY = { secret = "api-key" } }
"""
GRANT = pb.SecretGrant(module="shop.pay@1.2.0", namespace="shop", key="api-key")


@dataclass
class FakeRollout:
    put: list[dict[str, bytes]] = field(default_factory=list)
    restarted: bool = False
    host: Any = field(
        default_factory=lambda: SimpleNamespace(transport=SimpleNamespace(close=lambda: None))
    )

    def put_credentials(self, files: dict[str, bytes]) -> bool:
        self.put.append(files)
        return True

    def restart(self) -> None:
        self.restarted = True


@dataclass
class FakeSession:
    rollout: FakeRollout = field(default_factory=FakeRollout)
    records: list[pb.ReleaseRecord] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)

    def record(self, release: pb.ReleaseRecord) -> None:
        self.records.append(release)

    def record_failure(self, release: pb.ReleaseRecord) -> None:
        release.status = "failed"
        self.records.append(release)

    def report(self, target: str, message: str) -> None:
        self.reports.append(f"{target}: {message}")

    def open(self, place: object) -> FakeRollout:
        return self.rollout


def _apply(tmp_path: Path) -> tuple[_Apply, FakeSession, Bundle]:
    (tmp_path / "pay.wasm").write_bytes(COMPONENT_HEADER + b"pay")
    (tmp_path / "cluster.toml").write_text(CLUSTER)
    targets = load_targets(tmp_path / "cluster.toml")
    plan = make_plan(targets, nothing_yet())
    plan = replace(plan, live=replace(plan.live, bundles={"a": "sha256:" + "1" * 64}))
    session = FakeSession()
    bundle = Bundle(
        "node-a", "node", tmp_path / "b.tgz", "sha256:" + "2" * 64, {"shop.pay@1.2.0": "sha256:x"}
    )
    return _Apply(plan, session, frozenset({"a"})), session, bundle  # type: ignore[arg-type]


def test_a_pending_release_names_the_modules_and_grants(tmp_path: Path) -> None:
    run, session, bundle = _apply(tmp_path)
    run.record_pending(run.plan.targets.node("a"), bundle)
    [pending] = session.records
    assert pending.status == "pending" and pending.target == "a"
    assert dict(pending.module_digests) == {"shop.pay@1.2.0": "sha256:x"}
    assert list(pending.secret_grants) == [GRANT]
    run.record_failure("a", bundle, "boom")
    assert session.records[-1].status == "failed" and list(session.records[-1].secret_grants) == [
        GRANT
    ]


def test_a_certificate_only_change_uploads_and_records_without_restart(tmp_path: Path) -> None:
    run, session, bundle = _apply(tmp_path)
    credentials = cluster_ca(tmp_path / "cluster.toml", "c").node_credentials("a", "127.0.0.1")
    result = run.renew_certificate(run.plan.targets.node("a"), bundle, credentials)
    assert (result.status, result.detail) == ("applied", "certificate renewed")
    assert session.rollout.put == [credentials.files()] and not session.rollout.restarted
    [record] = session.records
    assert record.status == "applied" and record.bundle_digest == "sha256:" + "1" * 64
    assert list(record.secret_grants) == [GRANT]
    resources = json.loads(record.attributes[RESOURCES_KEY])
    node = next(r for r in resources if r["address"] == "node.a")
    assert node["attributes"]["tls"] == credentials.fingerprint
    assert [r["address"] for r in resources] == ["node.a", "module.shop.pay"]

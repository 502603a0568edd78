"""wrctl on the local target, for real: plan -> apply -> invoke -> change env -> plan `~` ->
apply -> invoke sees it -> status with certificates -> the manager refuses clients without a
certificate -> secrets set/list/delete -> no-op apply -> lock contention -> stale saved plan
-> rollback -> destroy. wrctl's credentials come from the cluster's own CA, unasked."""

from __future__ import annotations

import json
import re
import socket
import ssl
import stat
import subprocess
from pathlib import Path

import grpc
import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.api import wruntime_pb2_grpc as pb_grpc
from runtime.identity import MANAGER_TLS_NAME, TlsFiles, channel_options, sync_channel
from runtime.wire import COMPONENT_HEADER
from tests.e2e.conftest import COLD, LocalCluster
from tests.e2e.drift_steps import check_drift
from tests.infra.process import wait_until

pytestmark = pytest.mark.slow


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def test_full_cycle(local_cluster: LocalCluster) -> None:
    c = local_cluster
    first = c.wrctl("plan", "--detailed-exitcode")
    assert first.returncode == 2, first.stderr
    assert "Plan: 4 to add, 0 to change, 0 to destroy." in first.stdout
    assert "everything is to be created" in first.stderr

    out = _ok(c.wrctl("apply", "--auto-approve", *COLD))
    assert "Apply complete." in out
    assert "node-local: healthy" in out
    # apply put each target's certificate and key on the host, outside any release
    for target, stem in (("manager", "manager"), ("node-local", "node")):
        tls = c.root / "wr" / target / "tls"
        assert sorted(p.name for p in tls.iterdir()) == sorted(
            ["ca.crt", f"{stem}.crt", f"{stem}.key"]
        )
        assert stat.S_IMODE((tls / f"{stem}.key").stat().st_mode) == 0o600

    reply = c.wrctl("invoke", "example.caller/run", "--json")
    _ok(reply)
    body = json.loads(reply.stdout)
    assert body["status"] == 200 and len(body["trace_id"]) == 32
    assert "hello" in json.dumps(body["body"])

    echo = c.wrctl("invoke", "example.echo/echo.EchoService/Echo", "--data", '{"message": "hi"}')
    _ok(echo)
    assert json.loads(echo.stdout) == {"message": "hi"}

    again = _ok(c.wrctl("apply", "--auto-approve"))
    assert "No changes." in again and "bundle" not in again

    c.write(**{'GREETING = "hello"': 'GREETING = "bonjour"'})
    changed = c.wrctl("plan", "--detailed-exitcode")
    assert changed.returncode == 2
    assert '~ env.GREETING = "hello" -> "bonjour"' in changed.stdout
    assert "Plan: 0 to add, 1 to change, 0 to destroy." in changed.stdout
    _ok(c.wrctl("apply", "--auto-approve"))
    assert "bonjour" in _ok(c.wrctl("invoke", "example.caller/run"))
    assert c.wrctl("plan", "--detailed-exitcode").returncode == 0

    status_run = c.wrctl("status", "--json", "--manager", f"127.0.0.1:{c.manager_port}")
    _ok(status_run)
    status = json.loads(status_run.stdout)
    [node] = status["nodes"]
    assert node["name"] == "local" and node["release"]["status"] == "applied"
    # the quick start's credentials came from the cluster's own CA, with no step of the user's
    certificates = {c["certificate"].split()[0]: c for c in status["certificates"]}
    assert sorted(certificates) == ["CA", "manager", "node", "operator"]
    assert all(c["days_left"] > 300 and not c["warning"] for c in certificates.values())

    _check_the_manager_refuses_strangers(c)
    _check_secrets_round_trip(c)
    _check_a_stolen_node_key_cannot_plant_an_impostor(c)
    check_drift(c, lambda _address: c.channel())
    _check_rotation_reloads_in_place(c)

    # Another apply holds the lock: this one fails clearly and changes nothing.
    c.write(**{'GREETING = "hello"': 'GREETING = "hola"'})
    client = c.client()
    try:
        with client.apply_lock("test holder"):
            blocked = c.wrctl("apply", "--auto-approve")
    finally:
        client.close()
    assert blocked.returncode == 1
    assert "the apply lock is held by" in blocked.stderr and "test holder" in blocked.stderr
    assert "bonjour" in _ok(c.wrctl("invoke", "example.caller/run"))

    # A saved plan whose live state moved is refused.
    _ok(c.wrctl("plan", "-out", "plan.json"))
    _ok(c.wrctl("secrets", "set", "example", "unrelated", stdin="x"))
    stale = c.wrctl("apply", "plan.json")
    assert stale.returncode == 1
    assert "changed since this plan was made" in stale.stderr

    # A fresh saved plan applies without asking.
    _ok(c.wrctl("plan", "-out", "plan.json"))
    _ok(c.wrctl("apply", "plan.json"))
    assert "hola" in _ok(c.wrctl("invoke", "example.caller/run"))

    # Rollback on demand: back to the release before (bonjour); the config change is pending.
    unknown = c.wrctl("rollback", "--node", "nope", "--auto-approve")
    assert unknown.returncode == 1 and "node nope: the manager has no release" in unknown.stderr
    back = _ok(c.wrctl("rollback", "--auto-approve"))
    assert re.search(r"node-local\s+rolled-back\s+now on [0-9a-f]{12}", back), back
    assert "bonjour" in _ok(c.wrctl("invoke", "example.caller/run"))
    pending = c.wrctl("plan", "--detailed-exitcode")
    assert pending.returncode == 2
    assert '~ env.GREETING = "bonjour" -> "hola"' in pending.stdout
    listed = c.wrctl("history", "--node", "local", "--json")
    _ok(listed)
    history = json.loads(listed.stdout)
    assert [r["status"] for r in history[:2]] == ["rolled-back", "applied"]
    assert history[0]["previous_bundle_digest"] == history[1]["bundle_digest"]
    _ok(c.wrctl("rollback", "--node", "local", "--auto-approve"))  # and forward again
    assert "hola" in _ok(c.wrctl("invoke", "example.caller/run"))

    gone = _ok(c.wrctl("destroy", "--auto-approve"))
    assert "Destroy complete." in gone
    workdir = c.root / "wr"
    assert not (workdir / "manager").exists() and not (workdir / "node-local").exists()
    assert not (workdir / "run" / "supervisord.pid").exists()
    after = c.wrctl("plan", "--detailed-exitcode")
    assert after.returncode == 2 and "Plan: 4 to add" in after.stdout


def _check_the_manager_refuses_strangers(c: LocalCluster) -> None:
    """No client certificate, no answer: plaintext and TLS without a certificate are both
    refused in the handshake, before any RPC runs."""
    address = f"127.0.0.1:{c.manager_port}"
    ca = c.credentials().files.ca_cert_path.read_bytes()
    anonymous = grpc.secure_channel(
        address,
        grpc.ssl_channel_credentials(root_certificates=ca),
        channel_options(MANAGER_TLS_NAME),
    )
    for channel in (grpc.insecure_channel(address), anonymous):
        with channel:
            with pytest.raises(grpc.RpcError) as refused:
                pb_grpc.ManagerServiceStub(channel).ListSecrets(pb.ListSecretsRequest(), timeout=10)
            assert refused.value.code() is grpc.StatusCode.UNAVAILABLE, refused.value


def _check_secrets_round_trip(c: LocalCluster) -> None:
    value = "e2e-Value-That-Must-Not-Show"
    stored = _ok(c.wrctl("secrets", "set", "example", "e2e-token", stdin=value + "\n"))
    assert "Secret example/e2e-token version 1 stored" in stored and value not in stored
    listed = c.wrctl("secrets", "list", "example", "--json")
    _ok(listed)
    assert value not in listed.stdout + listed.stderr
    [entry] = [e for e in json.loads(listed.stdout) if e["name"] == "e2e-token"]
    assert entry["version"] == 1 and entry["modules"] == []
    table = _ok(c.wrctl("secrets", "list"))
    assert "e2e-token" in table and value not in table
    _ok(c.wrctl("secrets", "delete", "example", "e2e-token", "--yes"))
    after = c.wrctl("secrets", "list", "example", "--json")
    assert "e2e-token" not in after.stdout, after.stdout + after.stderr


def test_bad_cluster_file_is_reported_with_its_place(local_cluster: LocalCluster) -> None:
    local_cluster.write(**{'name = "e2e"': 'nmae = "e2e"'})
    result = local_cluster.wrctl("plan")
    assert result.returncode == 1
    assert (
        f"{Path('cluster.toml')}:2:1: cluster.nmae: unknown key; did you mean 'name'?"
        in result.stderr
    )


def test_broken_module_fails_the_gate_and_rolls_back(local_cluster: LocalCluster) -> None:
    c = local_cluster
    _ok(c.wrctl("apply", "--auto-approve", *COLD))
    broken = c.root / "broken.wasm"
    broken.write_bytes(COMPONENT_HEADER + b" this is not a component")
    c.template = c.template.replace(
        next(line for line in c.template.splitlines() if "echo-" in line and "component" in line),
        f'component = "{broken}"',
    )
    c.write()
    failed = c.wrctl("apply", "--auto-approve", "--health-timeout", "15")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "failed its health gate" in failed.stderr
    assert "node-local: back on the previous release" in failed.stderr
    assert "which is healthy" in failed.stderr
    assert re.search(r"node-local\s+rolled-back\s+node local failed its health gate", failed.stderr)
    assert "Last log lines of node-local:" in failed.stderr
    assert "==> " in failed.stderr  # the tail of the failing services' logs
    with c.channel() as channel:
        history = pb_grpc.ManagerServiceStub(channel).ListReleases(
            pb.ListReleasesRequest(target="local"), timeout=10
        )
    latest, before = history.releases[0], history.releases[1]
    assert (latest.status, before.status) == ("failed", "applied")
    assert "health gate" in latest.message and "back on release" in latest.message
    assert latest.previous_bundle_digest == before.bundle_digest

    # The previous release serves again, and the change is still pending.
    assert "hello" in _ok(c.wrctl("invoke", "example.caller/run"))
    plan = c.wrctl("plan", "--detailed-exitcode")
    assert plan.returncode == 2
    assert "module.example.echo must be replaced" in plan.stdout


def _check_a_stolen_node_key_cannot_plant_an_impostor(c: LocalCluster) -> None:
    """The attack of issue 16, with the node's own deployed key: registering a fake
    example.echo at an address of one's own is refused (wrong digest, foreign peer address),
    as is asking for a secret no module of the registration is granted; calls stay correct."""
    tls = c.root / "wr" / "node-local" / "tls"
    node = TlsFiles(tls / "node.crt", tls / "node.key", tls / "ca.crt")
    with c.channel() as operator:
        state = pb_grpc.ManagerServiceStub(operator).GetClusterState(
            pb.GetClusterStateRequest(), timeout=10
        )
    [placed] = [n for n in state.nodes if n.name == "local"]
    digest = placed.release.module_digests["example.echo@1.0.0"]

    def register(
        module_digest: str = digest,
        peer: str = "https://127.0.0.1:9",
        secrets: tuple[pb.SecretRequest, ...] = (),
    ) -> grpc.RpcError:
        module = pb.ModuleDescriptor(
            namespace="example", name="echo", version="1.0.0", digest=module_digest
        )
        registration = pb.EngineRegistration(
            engine_id="impostor",
            address="http://127.0.0.1:9",
            peer_address=peer,
            modules=[module],
            secrets=secrets,
        )
        address = f"127.0.0.1:{c.manager_port}"
        with (
            sync_channel(address, node, MANAGER_TLS_NAME) as channel,
            pytest.raises(grpc.RpcError) as refused,
        ):
            pb_grpc.ManagerServiceStub(channel).RegisterEngine(
                pb.RegisterEngineRequest(registration=registration), timeout=10
            )
        return refused.value

    wrong_digest = register(module_digest="sha256:" + "0" * 64)
    assert wrong_digest.code() is grpc.StatusCode.PERMISSION_DENIED, wrong_digest
    assert "example.echo@1.0.0" in str(wrong_digest.details())
    elsewhere = register(peer="https://192.0.2.7:9443")
    assert elsewhere.code() is grpc.StatusCode.PERMISSION_DENIED, elsewhere
    secret = register(secrets=(pb.SecretRequest(namespace="example", key="unrelated"),))
    assert secret.code() is grpc.StatusCode.PERMISSION_DENIED, secret
    assert "bonjour" in _ok(c.wrctl("invoke", "example.caller/run"))


def _check_rotation_reloads_in_place(c: LocalCluster) -> None:
    """`wrctl cert rotate` -> plan `~ tls` -> apply installs the files and restarts nothing;
    the proxy's peer port then presents the new certificate, and calls keep working."""
    engines_before = _engine_ids(c)
    _ok(c.wrctl("cert", "rotate", "--node", "local"))
    plan = c.wrctl("plan", "--detailed-exitcode")
    assert plan.returncode == 2 and "~ tls" in plan.stdout, plan.stdout + plan.stderr
    applied = _ok(c.wrctl("apply", "--auto-approve"))
    assert "TLS certificate" in applied and "restarted" not in applied, applied
    new = (c.root / ".wrctl" / "e2e" / "pki" / "node-local.crt").read_bytes()
    tls = c.root / "wr" / "node-local" / "tls"
    assert (tls / "node.crt").read_bytes() == new
    peer_port = int(re.search(r"^peer_port = (\d+)$", c.template, re.M).group(1))  # type: ignore[union-attr]
    context = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    context.check_hostname = False
    context.load_cert_chain(tls / "node.crt", tls / "node.key")
    expected = ssl.PEM_cert_to_DER_cert(new.decode())

    def presented() -> bool:
        with (
            socket.create_connection(("127.0.0.1", peer_port), timeout=5) as raw,
            context.wrap_socket(raw) as wrapped,
        ):
            return wrapped.getpeercert(binary_form=True) == expected

    wait_until(presented, 30, "the proxy's peer port to present the rotated certificate")
    assert "bonjour" in _ok(c.wrctl("invoke", "example.caller/run"))
    assert c.wrctl("plan", "--detailed-exitcode").returncode == 0
    # nothing was restarted: no engine registered since (a restart registers a new id, and
    # re-registering an id moves its time); an old engine that went away meanwhile is fine
    assert _engine_ids(c) <= engines_before


def _engine_ids(c: LocalCluster) -> set[tuple[str, float]]:
    with c.channel() as channel:
        state = pb_grpc.ManagerServiceStub(channel).GetClusterState(
            pb.GetClusterStateRequest(), timeout=10
        )
    # every engine the manager lists, healthy or not (a late heartbeat is not a restart)
    return {
        (e.registration.engine_id, e.registered_at.ToDatetime().timestamp())
        for n in state.nodes
        for e in n.engines
    }

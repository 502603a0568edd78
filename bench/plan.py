"""bench/plan.py: how long `wrctl plan` takes for 1-1000 modules on 1-100 nodes against a live
manager (target: under 1 s for 1000 modules / 100 nodes, schema compilation excluded).

    python bench/plan.py [--quick]
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._results import Metric, print_table, save
from runtime.api import wruntime_pb2 as pb
from runtime.identity import MANAGER_TLS_NAME, sync_channel
from runtime.wire import module_key
from wrctl.config import load_targets
from wrctl.credentials import files_in, resolve_credentials
from wrctl.managerapi import ManagerClient
from wrctl.observe import observe, observe_live
from wrctl.pki import ClusterCA
from wrctl.plan import make_plan, render_text
from wrctl.plan.live import encode_resources


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cluster(root: Path, modules: int, nodes: int, port: int) -> Path:
    lines = ['[cluster]\nname = "bench"\n', f'[manager]\nhost = "local"\nport = {port}\n']
    lines += [f'[[node]]\nname = "n{i}"\nhost = "local"\n' for i in range(nodes)]
    for i in range(modules):
        wasm = root / f"m{i}.wasm"
        wasm.write_bytes(os.urandom(64) * 256)  # 16 KiB each; digests are part of the cost
        lines.append(
            f'[[module]]\nnamespace = "bench"\nname = "m{i}"\nversion = "1.0.0"\n'
            f'component = "m{i}.wasm"\nnodes = ["n{i % nodes}"]\n'
            f'env = {{ LEVEL = "info", KEY = {{ secret = "k{i % 10}" }} }}\n'
        )
    path = root / "cluster.toml"
    path.write_text("\n".join(lines))
    return path


def _write(directory: Path, files: dict[str, bytes]) -> Path:
    directory.mkdir(mode=0o700)
    for name, data in files.items():
        (directory / name).write_bytes(data)
        (directory / name).chmod(0o600)
    return directory


def _record_live(address: str, cluster: Path, ca: ClusterCA) -> None:
    """Make the manager's live state equal to the desired state (as a converged apply would)."""
    credentials = resolve_credentials(None)  # WR_CREDENTIALS, set by main
    client = ManagerClient(address, credentials)
    try:
        for i in range(10):  # the secrets the modules' env references
            client.set_secret("bench", f"k{i}", "x")
        plan = make_plan(load_targets(cluster), observe(address, credentials))
        with client.apply_lock("bench") as lock:
            by_target: dict[str, list] = {}
            for resource in plan.desired.resources.values():
                for target in resource.targets:
                    by_target.setdefault(target, []).append(resource)
            for target, resources in by_target.items():
                resources.sort(key=lambda r: r.kind != "node" and r.kind != "manager")
                client.record(
                    pb.ReleaseRecord(
                        target=target,
                        bundle_digest="sha256:" + "0" * 64,
                        runtime_version="0.1.0",
                        status="applied",
                        attributes=encode_resources(resources),
                        module_digests={  # what authorises the node's registrations
                            module_key(*r.address.split(".")[1:3], r.attributes["version"]): (
                                r.attributes["component"]
                            )
                            for r in resources
                            if r.kind == "module"
                        },
                    ),
                    lock.lock_id,
                )
    finally:
        client.close()
    _register_engines(address, plan, ca, cluster.parent)


def _register_engines(address: str, plan: object, ca: ClusterCA, root: Path) -> None:
    """One live, healthy engine per node carrying its modules, as after a real apply; each
    registers as its node (node certificate), as the manager only lets a node do."""
    import uuid

    from runtime.api import wruntime_pb2_grpc as pb_grpc

    resources = plan.desired.resources.values()  # type: ignore[attr-defined]
    for node in (r for r in resources if r.kind == "node"):
        name = node.address.removeprefix("node.")
        tls = _write(root / f"tls-{name}", ca.node_credentials(name, "127.0.0.1").files())
        with sync_channel(address, files_in(tls, "node"), MANAGER_TLS_NAME) as channel:
            stub = pb_grpc.ManagerServiceStub(channel)
            modules = [
                pb.ModuleDescriptor(
                    namespace=r.address.split(".")[1],
                    name=r.address.split(".")[2],
                    version=r.attributes["version"],
                    digest=r.attributes["component"],
                )
                for r in resources
                if r.kind == "module" and name in r.targets
            ]
            engine_id = str(uuid.uuid4())
            registration = pb.EngineRegistration(
                engine_id=engine_id,
                address="http://127.0.0.1:9100",
                proxy_address="http://127.0.0.1:9001",
                modules=modules,
                node=name,
                runtime_version="0.1.0",
            )
            stub.RegisterEngine(pb.RegisterEngineRequest(registration=registration))
            stub.Heartbeat(pb.HeartbeatRequest(engine_id=engine_id, healthy_modules=modules))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats")
    args = parser.parse_args()
    sizes = (
        [(1, 1), (100, 10), (1000, 100)]
        if args.quick
        else [(m, n) for m in (1, 100, 1000) for n in (1, 10, 100)]
    )
    repeats = 3 if args.quick else 7
    metrics: list[Metric] = []
    with tempfile.TemporaryDirectory() as tmp:
        port = _free_port()
        admin = _free_port()
        # one CA for every size: the operator (WR_CREDENTIALS), the manager and the nodes
        ca = ClusterCA(Path(tmp) / "pki", "bench")
        operator = _write(Path(tmp) / "operator", ca.operator_credentials("bench").files())
        os.environ["WR_CREDENTIALS"] = str(operator)
        tls = _write(Path(tmp) / "manager-tls", ca.manager_credentials([]).files())
        conf = Path(tmp) / "manager.toml"
        conf.write_text(
            f'cluster = "bench"\nlisten_address = "127.0.0.1:{port}"\n'
            f'admin_address = "127.0.0.1:{admin}"\ndata_dir = "{tmp}/data"\n'
            f'[tls]\ncert_path = "{tls}/manager.crt"\nkey_path = "{tls}/manager.key"\n'
            f'ca_cert_path = "{tls}/ca.crt"\n'
        )
        env = {**os.environ, "WR_SECRETS_KEY": base64.b64encode(os.urandom(32)).decode()}
        manager = subprocess.Popen(
            [str(Path(sys.executable).parent / "wr-manager"), "--config", str(conf)],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        try:
            ManagerClient(f"127.0.0.1:{port}", resolve_credentials(None)).wait_ready(20)
            for modules, nodes in sizes:
                if nodes > modules and modules > 1:
                    continue
                root = Path(tmp) / f"c{modules}x{nodes}"
                root.mkdir()
                cluster = _cluster(root, modules, nodes, port)
                _record_live(f"127.0.0.1:{port}", cluster, ca)
                times = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    targets = load_targets(cluster)
                    plan = make_plan(targets, observe_live(targets))
                    render_text(plan.actions)
                    times.append(time.perf_counter() - started)
                assert not plan.actions, (
                    f"expected a converged plan, got {len(plan.actions)} actions"
                )
                best = sorted(times)[len(times) // 2]
                target = 1.0 if (modules, nodes) == (1000, 100) else None
                metrics.append(
                    Metric(f"plan_{modules}_modules_{nodes}_nodes", round(best, 4), "s", target)
                )
        finally:
            manager.terminate()
            manager.wait(10)
    print_table("wrctl plan against a live manager (median)", metrics)
    print(f"saved {save('plan', metrics)}")


if __name__ == "__main__":
    main()

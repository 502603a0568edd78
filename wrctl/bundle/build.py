"""Build the bundles of a cluster: one per node (proxy, engines, that node's modules) and one
for the manager, as reproducible tarballs with a manifest (and a signature when asked)."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from platform import machine as host_machine
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from runtime.engine.capabilities import REGISTRY
from runtime.wire import module_key
from wrctl.bundle.hostverify import MANIFEST, SIGNATURE
from wrctl.bundle.manifest import HostSecret, ModuleEntry, make_manifest
from wrctl.bundle.services import DEFAULT_BASE_IMAGE, Program, ServiceContext, service_files
from wrctl.bundle.tarball import build_tarball
from wrctl.bundle.wheelset import WheelSet
from wrctl.config.hostvalues import PATH_CHARS
from wrctl.config.model import ClusterConfig, ModuleSection
from wrctl.config.targets import LOOPBACK, HostTarget, NodeTarget, Targets
from wrctl.schemas import compile_schema
from wrctl.templates import render

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

Report = Callable[[str, int, int], None]  # (step, done, total)
VERIFIER = "bin/wr-verify-bundle"
STATE_PASSWORD = HostSecret(
    env="WR_STATE_PASSWORD",
    file="manager/data/pgpass",
    what="the password of [manager] state's PostgreSQL DSN",
)


@dataclass(frozen=True)
class Bundle:
    target: str  # "manager" or "node-NAME"
    kind: str  # "manager" | "node"
    path: Path
    digest: str  # "sha256:<hex>" of the tarball
    module_digests: dict[str, str]


@dataclass(frozen=True)
class BundleOptions:
    wheels: WheelSet | None = None  # None: no wheels/ (the host has the runtime installed)
    signing_key: Ed25519PrivateKey | None = None
    report: Report | None = None


def split_state_password(state: str) -> tuple[str, str | None]:
    """The manager's state URL without its password, and the password (None if none).
    The password reaches the host apart from the bundle (see STATE_PASSWORD)."""
    if not state.startswith(("postgres://", "postgresql://")):
        return state, None
    parts = urlsplit(state)
    if parts.password is None:
        return state, None
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    # percent-decoded: the password as PostgreSQL knows it (what a pgpass line holds)
    return urlunsplit(parts._replace(netloc=f"{user}@{hostinfo}")), unquote(parts.password)


def state_password_file(password: str) -> bytes:
    """STATE_PASSWORD's file: a PGPASSFILE line for any host/port/db/user, `:` and `\\` in
    the password escaped (what install.sh writes when given the variable by hand)."""
    escaped = password.replace("\\", "\\\\").replace(":", "\\:")
    return f"*:*:*:*:{escaped}\n".encode()


def build_bundles(
    targets: Targets,
    out_dir: Path,
    runtime_version: str,
    nodes: list[str] | None = None,
    options: BundleOptions | None = None,
) -> list[Bundle]:
    """Write the manager bundle and one bundle per node (or the named nodes) into out_dir."""
    options = options or BundleOptions()
    out_dir.mkdir(parents=True, exist_ok=True)
    builder = _Builder(targets, out_dir, runtime_version, options)
    wanted = [n for n in targets.nodes if nodes is None or n.name in nodes]
    total = 1 + len(wanted)
    builder.progress("bundles", 0, total)
    # One manager bundle per manager host (they differ in advertise_address and the local
    # proxy): the first is target "manager"'s, the others go with it in apply's rolling upgrade.
    bundles = [builder.manager(place) for place in targets.manager.places]
    builder.progress("bundles", 1, total)
    schemas = builder.schemas()
    for i, node in enumerate(wanted):
        bundles.append(builder.node(node, schemas))
        builder.progress("bundles", 2 + i, total)
    return bundles


def manager_toml(targets: Targets, place: HostTarget) -> str:
    """The manager.toml of the manager on `place` (the plan digests it per manager host)."""
    m = targets.config.manager
    several = len(targets.manager.places) > 1
    bind = LOOPBACK if place.is_local else "0.0.0.0"
    state, _ = split_state_password(m.state)
    return render(
        "manager.toml.j2",
        cluster=targets.config.cluster.name,
        listen_address=f"{bind}:{m.port}",
        admin_address=f"127.0.0.1:{m.admin_port}",
        state=state,
        heartbeat_timeout_secs=m.heartbeat_timeout_secs,
        local_proxy_address=_local_proxy(targets, place),
        # What the other managers, proxies and wrctl see in ListManagers.
        advertise_address=f"{place.wire_host}:{m.port}" if several else None,
    )


def _local_proxy(targets: Targets, place: HostTarget) -> str | None:
    """The data port of a node on the manager's host: jobs are dispatched through it.
    None when no node shares the host (the manager then cannot run jobs)."""
    for node in targets.nodes:
        if node.place.host == place.host:
            return f"http://127.0.0.1:{node.ports.data}"
    return None


class _Builder:
    def __init__(
        self, targets: Targets, out_dir: Path, runtime_version: str, options: BundleOptions
    ) -> None:
        self.targets = targets
        self.config = targets.config
        self.out_dir = out_dir
        self.runtime_version = runtime_version
        self.options = options
        self._wheels: dict[str, bytes] | None = None
        self._components: dict[Path, tuple[bytes, str]] = {}
        self._hashed: dict[int, tuple[bytes, str]] = {}

    def progress(self, step: str, done: int, total: int) -> None:
        if self.options.report:
            self.options.report(step, done, total)

    def schemas(self) -> dict[str, bytes]:
        base = self.config.source.parent
        wanted = [m for m in self.config.module if m.schema_]
        out: dict[str, bytes] = {}
        compiled: dict[Path, bytes] = {}  # modules often share one .proto: compile it once
        for i, m in enumerate(wanted):
            self.progress("schemas", i, len(wanted))
            assert m.schema_ is not None
            proto = (base / m.schema_).resolve()
            if proto not in compiled:
                compiled[proto] = compile_schema(proto)
            out[f"{m.namespace}.{m.name}"] = compiled[proto]
        self.progress("schemas", len(wanted), len(wanted))
        return out

    def manager(self, place: HostTarget | None = None) -> Bundle:
        m = self.config.manager
        place = place or self.targets.manager.place
        several = len(self.targets.manager.places) > 1
        _, password = split_state_password(m.state)
        files = {"config/manager.toml": manager_toml(self.targets, place).encode()}
        files |= _migration_files()
        secrets = [STATE_PASSWORD] if password is not None else []
        env = {"PGPASSFILE": f"@WORKDIR@/{STATE_PASSWORD.file}"} if secrets else {}
        program = Program(
            "wr-manager",
            "manager",
            ["@BIN@/wr-manager", "--config", "@CURRENT@/etc/manager.toml"],
            50,
            needs_secrets_key=True,
            env=env,
        )
        stem = f"manager-{place.host}" if several else "manager"
        return self._finish("manager", "manager", None, files, [program], [], secrets, place, stem)

    def node(self, node: NodeTarget, schemas: dict[str, bytes]) -> Bundle:
        config = self.config
        base = config.source.parent
        modules = list(node.modules)
        files: dict[str, bytes] = {
            "config/proxy.toml": render(
                "proxy.toml.j2",
                cluster=config.cluster.name,
                node=node,
                proxy=config.proxy,
                manager_addresses=list(self.targets.manager.node_endpoints),
                advertise_host=node.place.wire_host,
                peer_listen_host=LOOPBACK if node.place.is_local else "0.0.0.0",
            ).encode(),
        }
        proxy = f"wr-{node.name}-proxy"
        programs = [
            Program(proxy, "proxy", ["@BIN@/wr-proxy", "--config", "@CURRENT@/etc/proxy.toml"], 100)
        ]
        for index in range(node.engines):
            placed = _engine_modules(modules, index)
            files[f"config/engine-{index}.toml"] = render(
                "engine.toml.j2",
                cluster=config.cluster.name,
                node=node,
                index=index,
                modules=placed,
                capability_config=_capability_config(config, placed),
            ).encode()
            programs.append(
                Program(
                    f"wr-{node.name}-engine-{index}",
                    "engine",
                    ["@BIN@/wr-engine", "--config", f"@CURRENT@/etc/engine-{index}.toml"],
                    # engines stop before the proxy (reverse priority), so they can deregister
                    200,
                    after=[proxy],
                )
            )
        entries: list[ModuleEntry] = []
        for i, mod in enumerate(modules):
            self.progress(f"modules of node {node.name}", i, len(modules))
            wasm, digest = self._component(base / mod.component)
            files[f"modules/{mod.namespace}.{mod.name}.wasm"] = wasm
            entries.append(ModuleEntry(mod.namespace, mod.name, mod.version, digest))
            schema = schemas.get(f"{mod.namespace}.{mod.name}")
            if schema is not None:
                files[f"schemas/{mod.namespace}.{mod.name}.binpb"] = schema
        self.progress(f"modules of node {node.name}", len(modules), len(modules))
        return self._finish(
            node.place.name, "node", node.name, files, programs, entries, [], node.place
        )

    def _component(self, path: Path) -> tuple[bytes, str]:
        """A component's bytes and sha256, read once per file for all modules and nodes."""
        key = path.resolve()
        if key not in self._components:
            data = key.read_bytes()
            self._components[key] = (data, hashlib.sha256(data).hexdigest())
        return self._components[key]

    def _sha256(self, data: bytes) -> str:
        """sha256 hex of data, once per object: modules and wheels are shared by identity
        across the files of a run (the cache holds them, so an id is never reused)."""
        found = self._hashed.get(id(data))
        if found is None:
            found = (data, hashlib.sha256(data).hexdigest())
            self._hashed[id(data)] = found
        return found[1]

    def _wheel_files(self) -> dict[str, bytes]:
        """wheels/<file> of the WheelSet, read once for all the bundles of this run."""
        if self._wheels is None:
            wheels = self.options.wheels
            self._wheels = {
                f"wheels/{path.name}": path.read_bytes()
                for path in (wheels.files if wheels else [])
            }
        return self._wheels

    def _finish(
        self,
        target: str,
        kind: str,
        node: str | None,
        files: dict[str, bytes],
        programs: list[Program],
        modules: list[ModuleEntry],
        host_secrets: list[HostSecret],
        place: HostTarget,
        file_stem: str = "",
    ) -> Bundle:
        cluster = self.config.cluster.name
        wheels = self.options.wheels
        if wheels is not None:
            python = wheels.target.python
            platform = {"tag": wheels.target.platform, "python": python}
            platform["machine"] = wheels.target.machine
        else:  # no wheels: the host runs an installed runtime, like the one building this
            python = f"{sys.version_info.major}.{sys.version_info.minor}"
            platform = {"tag": "none", "python": python, "machine": host_machine()}
        image = place.docker_base_image or DEFAULT_BASE_IMAGE
        context = ServiceContext(cluster, target, kind, python, image)
        files.update(service_files(context, programs))
        files["install.sh"] = _install_script(kind, cluster, target, host_secrets)
        files[VERIFIER] = verifier_script()
        files.update(self._wheel_files())
        digests = {name: self._sha256(data) for name, data in files.items()}
        manifest = make_manifest(
            kind=kind,
            cluster=cluster,
            target=target,
            node=node,
            runtime_version=self.runtime_version,
            platform=platform,
            modules=modules,
            programs=[p.name for p in programs],
            host_secrets=host_secrets,
            files=files,
            digests=digests,
        )
        files[MANIFEST] = manifest
        digests[MANIFEST] = hashlib.sha256(manifest).hexdigest()
        if self.options.signing_key is not None:
            from wrctl.bundle.signing import sign_manifest

            files[SIGNATURE] = sign_manifest(self.options.signing_key, manifest)
            digests[SIGNATURE] = hashlib.sha256(files[SIGNATURE]).hexdigest()
        self.progress(f"packing {target}", 0, 1)
        path = self.out_dir / f"{cluster}-{file_stem or target}.tar.gz"
        packed = wheels.packed_cache if wheels else None
        _, digest = build_tarball(files, path, packed, digests)
        self.progress(f"packing {target}", 1, 1)
        module_digests = {
            module_key(m.namespace, m.name, m.version): f"sha256:{m.sha256}" for m in modules
        }
        return Bundle(target, kind, path, f"sha256:{digest}", module_digests)


def _install_script(kind: str, cluster: str, target: str, secrets: list[HostSecret]) -> bytes:
    """install.sh, which refuses paths outside the characters validation allows."""
    return render(
        "install.sh.j2",
        kind=kind,
        cluster=cluster,
        target=target,
        host_secrets=secrets,
        path_chars=PATH_CHARS,
    ).encode()


def verifier_script() -> bytes:
    """hostverify.py as a standalone script (stdlib only) for the host."""
    from wrctl.bundle import hostverify

    source = Path(hostverify.__file__).read_text(encoding="utf-8")
    return ("#!/usr/bin/env python3\n" + source).encode()


def _engine_modules(modules: list[ModuleSection], index: int) -> list[ModuleSection]:
    """Engine i carries every module with more than i replicas."""
    return [m for m in modules if m.replicas > index]


def _migration_files() -> dict[str, bytes]:
    """The manager's schema migrations, for the operator to read (`bundle inspect`) or to
    review before an upgrade; the manager applies its own copy (from the wheel) at start."""
    from runtime.manager.store.migrations import load_migrations

    return {
        f"migrations/{dialect}/{m.version:04d}_{m.name}.sql": m.sql.encode()
        for dialect in ("sqlite", "postgres")
        for m in load_migrations(dialect)
    }


def _capability_config(config: ClusterConfig, modules: Iterable[ModuleSection]) -> dict[str, Any]:
    """The capability sections an engine's modules need (engine.toml gets no others)."""
    wanted = {REGISTRY[c].section for m in modules for c in m.capabilities}
    return {k: v for k, v in config.capability_config().items() if k in wanted}

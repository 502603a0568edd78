"""cluster.toml resolved once into typed targets: where the manager and each node run, how
wrctl reaches them (command-line and environment overrides applied), their ports, and which
modules each node carries. Planner, bundler, deployer, logs, rollback and status read this,
never the raw [defaults]/[manager]/[[node]] layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from runtime import wire
from wrctl.config.model import ClusterConfig, HostSettings, ModuleSection, NodeSection
from wrctl.errors import WrctlError

LOOPBACK = "127.0.0.1"  # what host "local" means on the wire
DEFAULT_MANAGER = f"{LOOPBACK}:{wire.MANAGER_PORT}"  # where wrctl looks when nothing says
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"


@dataclass(frozen=True)
class Overrides:
    """What the command line and the environment change about reaching the cluster; the CLI
    fills it (WR_MANAGER and --manager, --known-hosts, --accept-new-host-key,
    --allow-other-cluster), libraries are handed it."""

    manager: str | None = None  # host:port wrctl dials instead of cluster.toml's manager
    known_hosts: str | None = None
    accept_new_host_key: bool = False
    allow_other_cluster: bool = False  # act on a manager that serves another cluster


@dataclass(frozen=True)
class Reach:
    """How wrctl opens a remote host over SSH (unused for host "local")."""

    user: str = "deploy"
    ssh_port: int = 22
    ssh_key: str | None = None
    jump_host: str | None = None
    known_hosts: str = DEFAULT_KNOWN_HOSTS
    accept_new_host_key: bool = False


@dataclass(frozen=True)
class HostTarget:
    """Where one target (the manager, or a node) lives and how its services run."""

    address: str  # resource address: "manager" or "node.NAME"
    name: str  # target name on the host and in bundles: "manager" or "node-NAME"
    host: str  # "local" or an address reached over SSH
    format: str  # systemd | docker | supervisor
    workdir: str  # absolute for a local host (relative ones resolve against cluster.toml)
    python: str = "python3"
    sudo: bool = False
    docker_base_image: str | None = None  # as declared; None: the bundler's default
    reach: Reach = field(default_factory=Reach)

    @property
    def is_local(self) -> bool:
        return self.host == "local"

    @property
    def wire_host(self) -> str:
        """The address other processes use for this host."""
        return LOOPBACK if self.is_local else self.host


@dataclass(frozen=True)
class NodePorts:
    data: int
    control: int
    admin: int
    peer: int
    engine: int  # engine i listens on engine + i


@dataclass(frozen=True)
class NodeTarget:
    name: str  # the [[node]] name
    place: HostTarget
    engines: int
    ports: NodePorts
    modules: tuple[ModuleSection, ...]  # the modules placed on this node


@dataclass(frozen=True)
class ManagerTarget:
    place: HostTarget  # the first manager's host
    port: int
    admin_port: int
    endpoint: str  # host:port wrctl dials first (an override wins)
    node_endpoint: str  # host:port the nodes' proxies dial (cluster.toml's, never overridden)
    # Every manager ([manager] hosts; one entry for `host`), in cluster.toml's order.
    places: tuple[HostTarget, ...]
    endpoints: tuple[str, ...]  # what wrctl dials, failing over in this order
    node_endpoints: tuple[str, ...]  # what the proxies dial


@dataclass(frozen=True)
class Targets:
    """A cluster.toml with every layer and override applied."""

    config: ClusterConfig
    overrides: Overrides
    manager: ManagerTarget
    nodes: tuple[NodeTarget, ...]

    def node(self, name: str) -> NodeTarget:
        for node in self.nodes:
            if node.name == name:
                return node
        names = ", ".join(n.name for n in self.nodes)
        raise WrctlError(f"{name!r} is not a node of {self.config.source} (nodes: {names})")

    def target(self, address: str) -> HostTarget:
        """The manager or a node by resource address (`manager`, `manager.HOST`, `node.NAME`)."""
        if address == "manager":
            return self.manager.place
        if address.startswith("manager."):
            host = address.removeprefix("manager.")
            for place in self.manager.places:
                if place.host == host:
                    return place
            hosts = ", ".join(p.host for p in self.manager.places)
            raise WrctlError(f"{host!r} is not a manager host of {self.config.source} ({hosts})")
        return self.node(address.removeprefix("node.")).place

    def recorded(self, address: str, attributes: dict[str, str]) -> HostTarget:
        """Where a target's last release was recorded (it may have moved since, or no longer
        be declared: being removed), from the plain host attributes of that record; reached
        with its declared connection settings, or [defaults] when it is not declared."""
        config = self.config
        section: HostSettings = config.manager
        if not _is_manager(address):
            named = [n for n in config.node if f"node.{n.name}" == address]
            section = named[0] if named else config.defaults
        reach = _reach(
            config,
            section,
            self.overrides,
            user=attributes.get("user"),
            ssh_port=attributes.get("ssh_port"),
        )
        return HostTarget(
            address=address,
            name=target_name(address),
            host=attributes["host"],
            format=attributes.get("format") or "supervisor",
            workdir=attributes.get("workdir", ""),
            python=attributes.get("python") or "python3",
            sudo=bool(_pick(config, section, "sudo")),
            docker_base_image=attributes.get("docker_base_image") or None,
            reach=reach,
        )


def target_name(address: str) -> str:
    """`manager` and `manager.HOST` -> `manager`, `node.NAME` -> `node-NAME` (names on hosts
    and bundles)."""
    return "manager" if _is_manager(address) else "node-" + address.removeprefix("node.")


def _is_manager(address: str) -> bool:
    return address == "manager" or address.startswith("manager.")


def module_nodes(config: ClusterConfig, mod: ModuleSection) -> list[str]:
    """The nodes a module is placed on: its `nodes` list, or every node."""
    return list(mod.nodes) if mod.nodes is not None else [n.name for n in config.node]


def resolve_targets(config: ClusterConfig, overrides: Overrides | None = None) -> Targets:
    """The one place cluster.toml's layers (defaults -> [manager]/[[node]]) and the overrides
    become targets."""
    overrides = overrides or Overrides()
    nodes = tuple(_node(config, n, overrides) for n in config.node)
    return Targets(config, overrides, _manager(config, overrides), nodes)


def manager_endpoint(config: ClusterConfig | None, overrides: Overrides) -> str:
    """host:port wrctl dials first for the manager: the override, else cluster.toml's, else
    the default. For commands that may run without a cluster.toml (status, invoke, unlock)."""
    return manager_endpoints(config, overrides)[0]


def manager_endpoints(config: ClusterConfig | None, overrides: Overrides) -> list[str]:
    """Every manager wrctl may dial, in order: the override ("a:9000,b:9000"), else
    cluster.toml's managers, else the default."""
    if overrides.manager:
        return _override_endpoints(overrides.manager)
    if config is None:
        return [DEFAULT_MANAGER]
    return list(resolve_targets(config, overrides).manager.endpoints)


def _override_endpoints(value: str) -> list[str]:
    return [part.strip().removeprefix("http://") for part in value.split(",") if part.strip()]


def _pick(config: ClusterConfig, host: HostSettings, name: str) -> object:
    """A host setting from the [manager]/[[node]] table, else from [defaults]."""
    value = getattr(host, name)
    return getattr(config.defaults, name) if value is None else value


def _reach(
    config: ClusterConfig,
    host: HostSettings,
    overrides: Overrides,
    *,
    user: object = None,
    ssh_port: object = None,
) -> Reach:
    user = user or _pick(config, host, "user") or "deploy"
    port = str(ssh_port or _pick(config, host, "ssh_port") or 22)
    if not port.isdigit():
        raise WrctlError(f"ssh_port {port!r}: expected a port number")
    key, jump = _pick(config, host, "ssh_key"), _pick(config, host, "jump_host")
    return Reach(
        user=str(user),
        ssh_port=int(port),
        ssh_key=str(key) if key else None,
        jump_host=str(jump) if jump else None,
        known_hosts=overrides.known_hosts or DEFAULT_KNOWN_HOSTS,
        accept_new_host_key=overrides.accept_new_host_key,
    )


def _place(
    config: ClusterConfig, section: HostSettings, address: str, host: str, overrides: Overrides
) -> HostTarget:
    workdir = str(_pick(config, section, "workdir") or "")
    if host == "local":  # a local workdir may be relative to cluster.toml
        workdir = str((config.source.parent / Path(workdir).expanduser()).resolve())
    image = _pick(config, section, "docker_base_image")
    return HostTarget(
        address=address,
        name=target_name(address),
        host=host,
        format=str(_pick(config, section, "format") or ""),
        workdir=workdir,
        python=str(_pick(config, section, "python") or "python3"),
        sudo=bool(_pick(config, section, "sudo")),
        docker_base_image=str(image) if image else None,
        reach=_reach(config, section, overrides),
    )


def _manager(config: ClusterConfig, overrides: Overrides) -> ManagerTarget:
    m = config.manager
    wires = tuple(f"{LOOPBACK if h == 'local' else h}:{m.port}" for h in m.all_hosts)
    endpoints = tuple(_override_endpoints(overrides.manager)) if overrides.manager else wires
    places = tuple(_place(config, m, "manager", h, overrides) for h in m.all_hosts)
    return ManagerTarget(
        places[0], m.port, m.admin_port, endpoints[0], wires[0], places, endpoints, wires
    )


def _node(config: ClusterConfig, node: NodeSection, overrides: Overrides) -> NodeTarget:
    ports = NodePorts(
        node.data_port, node.control_port, node.admin_port, node.peer_port, node.engine_port
    )
    placed = tuple(m for m in config.module if node.name in module_nodes(config, m))
    place = _place(config, node, f"node.{node.name}", node.host, overrides)
    return NodeTarget(node.name, place, node.engines, ports, placed)

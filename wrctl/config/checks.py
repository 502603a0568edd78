"""Rules that span several tables of cluster.toml: unique names, references between tables,
the files it names, placement (replicas on engines), workdirs as the hosts will see them,
ports, and the runtime's own rules. The loader places each problem at its file:line:col."""

from __future__ import annotations

import difflib
from pathlib import Path

from runtime.engine.capabilities import REGISTRY, grant_line, missing_node_config
from runtime.wire import Capability, module_host
from wrctl.config.files import component_problem, file_problem, import_problems, schema_problem
from wrctl.config.hostvalues import resolved_path_problem
from wrctl.config.model import ClusterConfig, ModuleSection
from wrctl.config.ports import port_problems
from wrctl.config.runtime_rules import Loc, Problem, runtime_problems
from wrctl.db.files import directory_problem


def cluster_problems(config: ClusterConfig, base: Path, compile_schemas: bool) -> list[Problem]:
    """Every cross-table problem; base is the directory relative paths start from."""
    return [
        *_manager_problems(config),
        *_table_problems(config),
        *_schedule_problems(config),
        *_capability_problems(config),
        *_file_problems(config, base, compile_schemas),
        *_placement_problems(config),
        *_workdir_problems(config, base),
        *port_problems(config),
        *runtime_problems(config),
    ]


def _manager_problems(config: ClusterConfig) -> list[Problem]:
    """[manager] hosts: several managers share one PostgreSQL database, on separate hosts."""
    m = config.manager
    if m.hosts is None:
        return []
    problems: list[Problem] = []
    if "host" in m.model_fields_set:
        problems.append((("manager", "host"), "set host (one manager) or hosts, not both"))
    if not m.hosts:
        problems.append((("manager", "hosts"), "must list at least one host (or be omitted)"))
    if len(m.hosts) > 1 and not m.state.startswith(("postgres://", "postgresql://")):
        problems.append(
            (
                ("manager", "hosts"),
                f"{len(m.hosts)} managers need a shared PostgreSQL state"
                ' (state = "postgresql://..."); a SQLite state serves one manager',
            )
        )
    for j, host in enumerate(m.hosts):
        if host in m.hosts[:j]:
            problems.append((("manager", "hosts", j), f"duplicate manager host {host!r}"))
        elif host == "local" and len(m.hosts) > 1:
            problems.append(
                (("manager", "hosts", j), 'several managers run on separate hosts, not "local"')
            )
    return problems


def _table_problems(config: ClusterConfig) -> list[Problem]:
    """Unique names, known node references, env values an environment can hold."""
    problems: list[Problem] = []
    node_names = [n.name for n in config.node]
    for i, node in enumerate(config.node):
        if node.name in node_names[:i]:
            problems.append((("node", i, "name"), f"duplicate node name {node.name!r}"))
    seen: set[tuple[str, str]] = set()
    for i, mod in enumerate(config.module):
        if (mod.namespace, mod.name) in seen:
            problems.append((("module", i, "name"), f"duplicate module {mod.namespace}.{mod.name}"))
        seen.add((mod.namespace, mod.name))
        for j, wanted in enumerate(mod.nodes or []):
            if wanted not in node_names:
                close = difflib.get_close_matches(wanted, node_names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append((("module", i, "nodes", j), f"unknown node {wanted!r}{hint}"))
        if mod.nodes is not None and not mod.nodes:
            problems.append((("module", i, "nodes"), "must list at least one node (or be omitted)"))
        for key, value in mod.env.items():
            if isinstance(value, str) and "\x00" in value:
                problems.append(
                    (("module", i, "env", key), "no environment can hold a NUL character")
                )
    return problems


def _schedule_problems(config: ClusterConfig) -> list[Problem]:
    """Unique schedule names; each names a declared module (and its version when pinned)."""
    problems: list[Problem] = []
    modules = {module_host(m.namespace, m.name): m for m in config.module}
    names: set[str] = set()
    for i, schedule in enumerate(config.schedule):
        if schedule.name in names:
            problems.append((("schedule", i, "name"), f"duplicate schedule {schedule.name!r}"))
        names.add(schedule.name)
        mod = modules.get(schedule.module)
        if mod is None:
            close = difflib.get_close_matches(schedule.module, list(modules), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                (("schedule", i, "module"), f"no [[module]] {schedule.module!r} is declared{hint}")
            )
        elif schedule.version is not None and schedule.version != mod.version:
            problems.append(
                (
                    ("schedule", i, "version"),
                    f"{schedule.module} is deployed at version {mod.version}, not"
                    f" {schedule.version}: the schedule's jobs would never run",
                )
            )
    return problems


def _capability_problems(config: ClusterConfig) -> list[Problem]:
    """A granted capability needs its section; a capability's module keys need the grant."""
    problems: list[Problem] = []
    sections = config.capability_config()
    for i, mod in enumerate(config.module):
        for j, capability in enumerate(mod.capabilities):
            missing = missing_node_config(capability, sections)
            if missing:
                section = REGISTRY[capability].section
                problems.append(
                    (
                        ("module", i, "capabilities", j),
                        f'capability "{capability}" needs a [{section}] table in cluster.toml '
                        f"(with {', '.join(k.partition('.')[2] for k in missing)})",
                    )
                )
        needs: tuple[tuple[str, bool, Capability], ...] = (
            ("migrations", mod.migrations is not None, "db"),
            ("allowed_buckets", bool(mod.allowed_buckets), "blobstore"),
            ("llm_tokens_per_minute", mod.llm_tokens_per_minute is not None, "llm"),
        )
        for key, present, needed in needs:
            if present and needed not in mod.capabilities:
                grant = grant_line([*mod.capabilities, needed])
                problems.append(
                    (
                        ("module", i, key),
                        f'{key} is for capability "{needed}", which this module is not '
                        f"granted (add {grant})",
                    )
                )
    return problems


def _file_problems(config: ClusterConfig, base: Path, compile_schemas: bool) -> list[Problem]:
    problems: list[Problem] = []
    compiled: dict[Path, str | None] = {}  # modules often share one .proto: check it once
    for i, mod in enumerate(config.module):
        problem = component_problem(base / mod.component)
        if problem:
            problems.append((("module", i, "component"), problem))
        else:
            problems += [
                (("module", i, "component"), p)
                for p in import_problems(base / mod.component, mod_key(mod), mod.capabilities)
            ]
        if mod.migrations is not None:
            problem = directory_problem(base / mod.migrations)
            if problem:
                problems.append((("module", i, "migrations"), problem))
        if mod.schema_ is not None:
            schema = base / mod.schema_
            if schema not in compiled:
                compiled[schema] = schema_problem(schema, compile_schemas)
            if compiled[schema]:
                problems.append((("module", i, "schema"), str(compiled[schema])))
    signing_key = config.bundle.signing_key
    if signing_key is not None:
        problem = file_problem(_expand(base, signing_key))
        if problem:
            problems.append((("bundle", "signing_key"), problem))
    return problems


def mod_key(mod: ModuleSection) -> str:
    return module_host(mod.namespace, mod.name)


def _placement_problems(config: ClusterConfig) -> list[Problem]:
    """A module's replicas each take one engine of every node it is placed on."""
    problems: list[Problem] = []
    engines = {n.name: (i, n.engines) for i, n in enumerate(config.node)}
    for i, mod in enumerate(config.module):
        placed = mod.nodes if mod.nodes is not None else list(engines)
        for name in placed:
            if name not in engines:
                continue  # reported as an unknown node
            j, count = engines[name]
            if mod.replicas > count:
                problems.append(
                    (
                        ("module", i, "replicas"),
                        f"{mod.replicas} replicas, but node {name!r} runs {count} engine(s) "
                        f"(node[{j}].engines); each replica needs an engine of its own",
                    )
                )
    return problems


def _workdir_problems(config: ClusterConfig, base: Path) -> list[Problem]:
    """A remote workdir must be absolute; a local one resolves against cluster.toml, and
    that full path is what install.sh writes into service files."""
    problems: list[Problem] = []
    hosts: list[tuple[Loc, str, str | None]] = [
        (("manager",), config.manager.host, config.manager.workdir)
    ]
    hosts += [(("node", i), n.host, n.workdir) for i, n in enumerate(config.node)]
    for loc, host, workdir in hosts:
        effective = workdir or config.defaults.workdir or ""
        where = (*loc, "workdir") if workdir else ("defaults", "workdir")
        if host != "local":
            if not effective.startswith("/"):
                problems.append(
                    (where, f"{effective!r} must be an absolute path for remote host {host!r}")
                )
            continue
        try:
            resolved = str(_expand(base, effective).resolve())
        except (OSError, RuntimeError):  # a symlink loop: the host would not get far either
            resolved = str(base / effective)
        problem = resolved_path_problem(resolved)
        if problem:
            problems.append((where, f"resolves to {problem}"))
    return problems


def _expand(base: Path, path: str) -> Path:
    """base / path with a leading `~` expanded (an unknown `~user` stays as written)."""
    try:
        return base / Path(path).expanduser()
    except RuntimeError:  # no home directory for that user
        return base / path

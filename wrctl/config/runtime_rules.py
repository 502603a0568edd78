"""Cross-checks that apply the runtime's own rules to cluster.toml before anything deploys:
public routes as the proxy loads them, deadlines and heartbeats as the services apply them."""

from __future__ import annotations

from runtime import wire
from wrctl.config.model import ClusterConfig

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]


def runtime_problems(config: ClusterConfig) -> list[Problem]:
    """Every place where cluster.toml asks for what the proxy or the engines would not do."""
    return [*_route_problems(config), *_timing_problems(config)]


def _route_problems(config: ClusterConfig) -> list[Problem]:
    proxy = config.proxy
    problems: list[Problem] = []
    if proxy.route and proxy.external_port is None:
        problems.append(
            (
                ("proxy", "route", 0),
                "public routes need proxy.external_port (the ingress listener); "
                "without it they are never served",
            )
        )
    modules = {(m.namespace, m.name) for m in config.module}
    first_of_shape: dict[tuple[str, ...], int] = {}
    for i, route in enumerate(proxy.route):
        if (route.namespace, route.module) not in modules:
            problems.append(
                (
                    ("proxy", "route", i, "module"),
                    f"no module {wire.module_host(route.namespace, route.module)}",
                )
            )
        first = first_of_shape.setdefault(wire.route_shape(route.path), i)
        if first != i:
            problems.append(
                (
                    ("proxy", "route", i, "path"),
                    f"{route.path!r} matches the same requests as proxy.route[{first}] "
                    f"({proxy.route[first].path!r}); the proxy refuses such a pair",
                )
            )
    return problems


def _timing_problems(config: ClusterConfig) -> list[Problem]:
    problems: list[Problem] = []
    limit = config.proxy.request_timeout_secs
    for i, mod in enumerate(config.module):
        if mod.request_timeout_secs > limit:
            default = "" if "request_timeout_secs" in mod.model_fields_set else " (the default)"
            problems.append(
                (
                    ("module", i, "request_timeout_secs"),
                    f"{mod.request_timeout_secs} s{default} is above proxy.request_timeout_secs "
                    f"({limit} s): the proxy answers 504 first, so this deadline never "
                    "applies; lower it or raise proxy.request_timeout_secs",
                )
            )
    heartbeat_timeout = config.manager.heartbeat_timeout_secs
    if heartbeat_timeout <= wire.HEARTBEAT_SECS:
        problems.append(
            (
                ("manager", "heartbeat_timeout_secs"),
                f"{heartbeat_timeout} s is not above the engines' heartbeat interval "
                f"({wire.HEARTBEAT_SECS} s): engines would turn unhealthy between heartbeats",
            )
        )
    return problems

"""Managers as plan resources [pure].

One manager is the resource `manager`, as always. Several (`[manager] hosts`) are one resource
each, `manager.<host>`, the host exactly as cluster.toml writes it (`manager.10.0.0.1`,
`manager.m1.example.com`, `manager.fd00::1`): everything after the first dot is the host, so
the address is a plain string in text and JSON and is split without ambiguity.

All of them are kept in the manager's one release record of target "manager" (its resources
list carries every manager.<host>, MANAGER_BUNDLES the bundle each host runs), so the
manager's record rules stay as they are: no new record target.
"""

from __future__ import annotations

import json
from dataclasses import replace

from wrctl.plan.diff import Action, ActionKind
from wrctl.plan.state import ClusterState, Resource

MANAGER = "manager"
PREFIX = "manager."
# ReleaseRecord.attributes key: JSON {"manager.<host>": bundle digest} of every manager host.
MANAGER_BUNDLES = "manager_bundles"
NOT_RUNNING = "not running: no live heartbeat row in ListManagers; apply redeploys it"


def address_of(host: str) -> str:
    return PREFIX + host


def host_of(address: str) -> str:
    """The host of `manager.<host>`; "" for anything else."""
    return address.removeprefix(PREFIX) if address.startswith(PREFIX) else ""


def is_manager(address: str) -> bool:
    return address == MANAGER or address.startswith(PREFIX)


def several(desired: ClusterState) -> bool:
    """Whether the desired state has one resource per manager host."""
    return any(host_of(a) for a in desired.resources)


def align(desired: ClusterState, live: ClusterState) -> ClusterState:
    """Live manager resources under the addresses the desired state uses, so that going from
    one manager to several (or back) diffs host by host: the recorded single `manager` is
    `manager.<its host>` once there are several, and `manager.<host>` is `manager` again when
    that host is the one manager left. A record from before per-host resources (one
    `manager` whose `hosts` attribute lists them) stands for each host it lists."""
    found = [r for r in live.resources.values() if r.kind == MANAGER]
    if not found:
        return live
    # host -> (recorded address, resource, whether the record's bundle is this host's)
    per_host: dict[str, tuple[str, Resource, bool]] = {}
    for resource in found:
        listed = resource.attributes.get("hosts")
        if resource.address == MANAGER and listed:
            attrs = {k: v for k, v in resource.attributes.items() if k != "hosts"}
            for i, host in enumerate(listed.split(",")):
                # the legacy record's bundle digest is its first host's
                one = replace(resource, attributes={**attrs, "host": host})
                per_host[host] = (address_of(host), one, i == 0)
        else:
            own = resource.address == MANAGER
            per_host[resource.attributes.get("host", "")] = (resource.address, resource, own)
    single = desired.resources.get(MANAGER)
    resources = {a: r for a, r in live.resources.items() if r.kind != MANAGER}
    bundles = dict(live.bundles)
    for host, (recorded, resource, owner) in per_host.items():
        if single is None:
            address = address_of(host)
        elif recorded == MANAGER:
            address = MANAGER  # a single manager stays itself, wherever it moves
        else:
            address = MANAGER if host == single.attributes.get("host") else address_of(host)
        resources[address] = replace(resource, address=address, targets=(address,))
        if owner and address not in bundles and MANAGER in bundles:
            bundles[address] = bundles[MANAGER]
    return replace(live, resources=resources, bundles=bundles)


def bundles_of(attributes: dict[str, str]) -> dict[str, str]:
    """The per-host bundle digests a manager record carries (none in a single one's)."""
    raw = attributes.get(MANAGER_BUNDLES)
    return {str(k): str(v) for k, v in json.loads(raw).items()} if raw else {}


def in_host_order(actions: list[Action], hosts: list[str]) -> list[Action]:
    """The manager actions (first in a plan) in cluster.toml's host order, the order apply
    upgrades them in; destroys keep their place after everything else."""
    rank = {address_of(h): i for i, h in enumerate(hosts)}
    ahead = [a for a in actions if a.address in rank and a.kind is not ActionKind.DESTROY]
    ahead.sort(key=lambda a: rank[a.address])
    return ahead + [a for a in actions if a not in ahead]


def not_running(
    desired: ClusterState, live: ClusterState, actions: list[Action], addresses: dict[str, str]
) -> list[Action]:
    """An update (no attribute changed) for each recorded manager host that the live
    managers do not list (ListManagers: heartbeat rows), so apply starts it again; nothing
    when the managers could not say. addresses: manager.<host> -> its advertised host:port."""
    if live.managers_up is None or not live.reachable:
        return actions
    acted = {a.address for a in actions}
    added = []
    for address, advertised in addresses.items():
        have = live.resources.get(address)
        if have is None or address in acted or advertised in live.managers_up:
            continue
        want = desired.resources[address]
        added.append(
            Action(
                address,
                ActionKind.UPDATE,
                MANAGER,
                (),
                len(want.attributes),
                want.targets,
                NOT_RUNNING,
            )
        )
    return added + actions

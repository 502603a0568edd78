"""What a node may register: only what its applied or pending release places on it, at
addresses its certificate names, with only the secrets that release grants those modules."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from runtime.api import wruntime_pb2 as pb
from runtime.identity import Identity, PermissionDenied, is_loopback
from runtime.manager.store import Tx
from runtime.wire import module_key

WHAT = "RegisterEngine"


@dataclass
class NodeAuthority:
    """The union of a node's applied and pending release."""

    digests: dict[str, set[str]] = field(default_factory=dict)  # module key -> digests
    grants: set[tuple[str, str, str]] = field(default_factory=set)  # (module key, ns, key)
    releases: int = 0

    def add(self, record: pb.ReleaseRecord) -> None:
        self.releases += 1
        for key, digest in record.module_digests.items():
            self.digests.setdefault(key, set()).add(digest)
        self.grants.update((g.module, g.namespace, g.key) for g in record.secret_grants)


async def of_node(tx: Tx, node: str) -> NodeAuthority:
    authority = NodeAuthority()
    for table in ("releases", "pending_releases"):
        row = await tx.fetchrow(f"SELECT record FROM {table} WHERE target = $1", node)
        if row is not None:
            authority.add(pb.ReleaseRecord.FromString(bytes(row["record"])))
    return authority


def host_of(url: str) -> str | None:
    try:
        host = urlsplit(url if "//" in url else f"//{url}").hostname
    except ValueError:
        return None
    if not host:
        return None
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host.lower()


async def check_owner(tx: Tx, engine_id: str, who: Identity, what: str) -> None:
    """A node acts only on engines it registered itself (rows stored before identities
    existed belong to the node named in them)."""
    row = await tx.fetchrow(
        "SELECT node, registered_by FROM engines WHERE engine_id = $1", engine_id
    )
    if row is None:
        return
    owner = row["registered_by"]
    if (owner and owner != who.uri) or (not owner and row["node"] != who.name):
        raise PermissionDenied(
            f"{what}: engine {engine_id!r} was registered by "
            f"{owner or 'node ' + repr(row['node'])}, not by {who}"
        )


async def check_registration(
    tx: Tx, reg: pb.EngineRegistration, who: Identity, hosts: frozenset[str]
) -> pb.EngineRegistration:
    """The registration as node `who` may store it (node filled in), or PermissionDenied
    naming the module, secret or address refused and why."""
    node = who.name
    if reg.node and reg.node != node:
        raise PermissionDenied(f"{WHAT}: {who} may not register an engine of node {reg.node!r}")
    await check_owner(tx, reg.engine_id, who, WHAT)
    if reg.peer_address and host_of(reg.peer_address) not in hosts:
        raise PermissionDenied(
            f"{WHAT}: peer_address {reg.peer_address!r} of engine {reg.engine_id!r} is not on"
            f" node {node!r} (its certificate names {', '.join(sorted(hosts)) or 'no host'})"
        )
    address_host = host_of(reg.address)
    if address_host is None or not (is_loopback(address_host) or address_host in hosts):
        raise PermissionDenied(
            f"{WHAT}: address {reg.address!r} of engine {reg.engine_id!r} is neither loopback"
            f" nor a host of node {node!r} ({', '.join(sorted(hosts)) or 'none'})"
        )
    authority = await of_node(tx, node)
    keys = set()
    for module in reg.modules:
        key = module_key(module.namespace, module.name, module.version)
        keys.add(key)
        allowed = authority.digests.get(key)
        if not allowed:
            why = (
                "no release has been recorded for it"
                if not authority.releases
                else "its applied and pending releases do not place it there"
            )
            raise PermissionDenied(f"{WHAT}: module {key} may not run on node {node!r}: {why}")
        if module.digest not in allowed:
            raise PermissionDenied(
                f"{WHAT}: module {key} on node {node!r} has digest"
                f" {module.digest or '(none)'}, but the release places"
                f" {' or '.join(sorted(allowed))}"
            )
    for request in reg.secrets:
        if not any((k, request.namespace, request.key) in authority.grants for k in keys):
            raise PermissionDenied(
                f"{WHAT}: secret {request.namespace}/{request.key} is not granted to any module"
                f" of engine {reg.engine_id!r} ({', '.join(sorted(keys)) or 'no modules'})"
                f" by node {node!r}'s release"
            )
    stored = pb.EngineRegistration()
    stored.CopyFrom(reg)
    stored.node = node
    return stored

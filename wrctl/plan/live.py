"""Live state: what the manager reports (releases recorded by apply, engines live now), turned
into resources and drift [pure; `wrctl.observe` asks the manager]."""

from __future__ import annotations

import json

from runtime.api import wruntime_pb2 as pb
from wrctl.plan.drift import RESOURCES_KEY, find_drift
from wrctl.plan.managers import bundles_of
from wrctl.plan.state import ClusterState, Resource

__all__ = ["RESOURCES_KEY", "encode_resources", "from_cluster_state", "nothing_yet"]


def encode_resources(resources: list[Resource]) -> dict[str, str]:
    """ReleaseRecord.attributes that let a later plan rebuild what this release applied."""
    return {RESOURCES_KEY: json.dumps([r.to_json() for r in resources], sort_keys=True)}


def from_cluster_state(response: pb.GetClusterStateResponse) -> ClusterState:
    """Rebuild resources from the recorded releases (the newest record wins for a module
    that several nodes carry), and find where the live cluster drifted from them."""
    releases = [n.release for n in response.nodes if n.HasField("release")]
    if response.HasField("manager_release"):
        releases.append(response.manager_release)
    releases.sort(key=lambda r: r.applied_at.ToDatetime())
    resources: dict[str, Resource] = {}
    for release in releases:
        if release.status == "failed" or RESOURCES_KEY not in release.attributes:
            continue
        for item in json.loads(release.attributes[RESOURCES_KEY]):
            resource = Resource.from_json(item)
            resources[resource.address] = resource
    bundles = {r.target: r.bundle_digest for r in releases}
    if response.HasField("manager_release"):  # several managers: each host's bundle too
        bundles |= bundles_of(dict(response.manager_release.attributes))
    return ClusterState(
        resources=resources,
        serial=response.serial,
        bundles=bundles,
        cluster=response.cluster,
        drift=find_drift(response),
    )


def nothing_yet() -> ClusterState:
    """Live state of a cluster whose manager does not exist yet: everything is to be created."""
    return ClusterState(resources={}, reachable=False)

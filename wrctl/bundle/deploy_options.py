"""What `wrctl apply` bundles with: wheels only when a target host lacks the runtime (any
non-local host), and the cluster's signing key when `[bundle] signing_key` names one."""

from __future__ import annotations

from wrctl.bundle.build import BundleOptions, Report
from wrctl.config.targets import Targets


def options_for_apply(
    targets: Targets, nodes: list[str], report: Report | None = None
) -> BundleOptions:
    """Bundle options for deploying the manager and `nodes` of `targets`."""
    config = targets.config
    places = [targets.manager.place] + [n.place for n in targets.nodes if n.name in nodes]
    wheels = None
    if not all(place.is_local for place in places):  # local ones run the installed runtime
        from wrctl.build.paths import cache_root
        from wrctl.bundle.wheels import Target, default_target
        from wrctl.bundle.wheelset import collect_wheels

        section = config.bundle
        target = (
            Target(section.platform, section.python)
            if section.platform
            else default_target(section.python)
        )
        wheels = collect_wheels(target, cache_root(), report)
    signing_key = None
    if config.bundle.signing_key:
        from wrctl.bundle.signing import load_private_key

        path = (config.source.parent / config.bundle.signing_key).expanduser()
        signing_key = load_private_key(path)
    return BundleOptions(wheels=wheels, signing_key=signing_key, report=report)

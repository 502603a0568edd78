"""Bundles: reproducible, offline, self-describing tarballs of a cluster's manager and nodes."""

from __future__ import annotations

from wrctl.bundle.build import Bundle, BundleOptions, build_bundles
from wrctl.bundle.hostverify import BundleInvalid, verify_bundle
from wrctl.bundle.wheels import Target, default_target
from wrctl.bundle.wheelset import WheelSet, collect_wheels

__all__ = [
    "Bundle",
    "BundleInvalid",
    "BundleOptions",
    "Target",
    "WheelSet",
    "build_bundles",
    "collect_wheels",
    "default_target",
    "verify_bundle",
]

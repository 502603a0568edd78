"""A cluster.toml that trusts signing keys: apply refuses an unsigned bundle on the host before
installing anything, and deploys once `[bundle] signing_key` signs what apply builds."""

from __future__ import annotations

import json

import pytest

from tests.e2e.conftest import LocalCluster
from wrctl.bundle.signing import generate_key

pytestmark = pytest.mark.slow


def test_apply_refuses_unsigned_bundles_then_deploys_signed_ones(
    local_cluster: LocalCluster,
) -> None:
    c = local_cluster
    public = generate_key(c.root / "deploy.pem")
    c.template = c.template.replace(
        "[defaults]", f'[bundle]\ntrusted_keys = ["{public}"]\n\n[defaults]'
    )
    c.write()
    refused = c.wrctl("apply", "--auto-approve")
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert "refused before install: unsigned bundle: manifest.sig is missing" in refused.stderr
    manager = c.root / "wr" / "manager"
    assert not (manager / "current").exists()
    assert [p.name for p in (manager / "releases").iterdir()] == []  # nothing unpacked stays

    c.template = c.template.replace("[bundle]\n", '[bundle]\nsigning_key = "deploy.pem"\n')
    c.write()
    applied = c.wrctl("apply", "--auto-approve")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    echo = c.wrctl("invoke", "example.echo/echo.EchoService/Echo", "--data", '{"message": "s"}')
    assert echo.returncode == 0, echo.stderr
    assert json.loads(echo.stdout) == {"message": "s"}

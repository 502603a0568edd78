"""The routing index: healthy candidates, versions, local vs remote, round robin, breakers."""

from __future__ import annotations

import pytest

from runtime.api import wruntime_pb2 as pb
from runtime.proxy.breaker import BreakerRegistry
from runtime.proxy.routing import PEER_TLS, PLAIN, RouteError, RoutingIndex

OWN = "https://node-a:9443"


def _rule(n: int, version: str = "1.0.0", peer: str = OWN, healthy: bool = True) -> pb.RoutingRule:
    return pb.RoutingRule(
        rule_id=f"r{n}",
        destination_namespace="shop",
        destination_module="inv",
        destination_version=version,
        engine_address=f"http://127.0.0.1:{9100 + n}",
        peer_address=peer,
        healthy=healthy,
    )


def _index(*rules: pb.RoutingRule, threshold: int = 5) -> RoutingIndex:
    table = pb.RoutingTable(rules=list(rules), version=7)
    return RoutingIndex(table, OWN, BreakerRegistry(threshold, 30, lambda a, s: None))


def test_round_robin_and_statuses() -> None:
    index = _index(_rule(0), _rule(1), _rule(2, healthy=False))
    group = index.resolve("shop", "inv", None)
    picks = [group.choose() for _ in range(4)]
    assert [p.rule_id for p in picks if p] == ["r0", "r1", "r0", "r1"]
    with pytest.raises(RouteError) as missing:
        index.resolve("shop", "nope", None)
    assert missing.value.status == 404
    with pytest.raises(RouteError) as bad:
        index.resolve("shop", "inv", "x.y")
    assert bad.value.status == 400


def test_unhealthy_only_module_is_503() -> None:
    with pytest.raises(RouteError) as none:
        _index(_rule(0, healthy=False)).resolve("shop", "inv", None)
    assert none.value.status == 503


def test_local_and_remote_rules() -> None:
    index = _index(_rule(0), _rule(1, peer="https://node-b:9443"))
    local, remote = index.resolve("shop", "inv", None).candidates
    assert local.local and local.upstream.key == ("127.0.0.1", 9100, PLAIN)
    assert not remote.local and remote.upstream.key == ("node-b", 9443, PEER_TLS)
    only_local = index.resolve("shop", "inv", None, local_only=True)
    assert [c.rule_id for c in only_local.candidates] == ["r0"]


def test_highest_matching_version_wins() -> None:
    index = _index(_rule(0, "1.2.0"), _rule(1, "1.5.0"), _rule(2, "2.0.0"), _rule(3, "1.5.0"))
    assert {c.rule_id for c in index.resolve("shop", "inv", "^1").candidates} == {"r1", "r3"}
    assert [c.rule_id for c in index.resolve("shop", "inv", "~1.2").candidates] == ["r0"]
    with pytest.raises(RouteError) as none:
        index.resolve("shop", "inv", "^3")
    assert none.value.status == 503


def test_open_breakers_are_skipped_until_all_are_open() -> None:
    index = _index(_rule(0), _rule(1), threshold=1)
    group = index.resolve("shop", "inv", None)
    first = group.choose()
    assert first is not None
    first.breaker.failure()
    assert all(group.choose() is not first for _ in range(3))
    second = group.choose()
    assert second is not None
    second.breaker.failure()
    assert group.choose() is None and group.retry_after() >= 29


def test_rules_with_bad_addresses_or_versions_are_ignored() -> None:
    bad = _rule(0, version="latest")
    worse = _rule(1)
    worse.engine_address = "not a url:x"
    index = _index(bad, worse, _rule(2))
    assert sorted(index.invalid_rules) == ["r0", "r1"]
    assert [c.rule_id for c in index.resolve("shop", "inv", None).candidates] == ["r2"]

"""Egress allowlist, ingress route matching and circuit breaker state machine."""

from __future__ import annotations

import pytest

from runtime.proxy import breaker as breaker_module
from runtime.proxy.breaker import CLOSED, HALF_OPEN, OPEN, BreakerKey, BreakerRegistry
from runtime.proxy.config import ExternalRoute
from runtime.proxy.egress import EgressPolicy
from runtime.proxy.ingress import IngressRouter


def test_egress_wildcard_matches_exactly_one_label() -> None:
    policy = EgressPolicy(["api.github.com", "*.openai.com"])
    assert policy.allows("api.github.com") and policy.allows("API.GitHub.com")
    assert policy.allows("api.openai.com")
    assert not policy.allows("openai.com")
    assert not policy.allows("a.b.openai.com")
    assert not policy.allows("github.com")
    assert "not in [egress]" in policy.refusal("x.org")
    assert "no [egress]" in EgressPolicy([]).refusal("x.org")


def _route(path: str, methods: list[str]) -> ExternalRoute:
    return ExternalRoute(path=path, methods=methods, module="inv", namespace="shop")


def test_ingress_static_beats_parameter_and_methods_are_checked() -> None:
    router = IngressRouter(
        [_route("/items/{id}", ["GET"]), _route("/items/new", ["POST"]), _route("/", [])]
    )
    assert router.match("GET", "/items/42?x").route == _route("/items/{id}", ["GET"])
    assert router.match("POST", "/items/new").route == _route("/items/new", ["POST"])
    assert router.match("DELETE", "/").route is not None  # no methods: all methods
    refused = router.match("PUT", "/items/42")
    assert (refused.status, refused.allow) == (405, "GET")
    assert router.match("GET", "/other/x").status == 404


class FakeClock:
    """Stands in for the breaker module's `time`: the open period passes when the test says so,
    however slowly the machine runs the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_breaker_opens_half_opens_and_closes(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(breaker_module, "time", clock)
    changes: list[tuple[BreakerKey, int]] = []
    registry = BreakerRegistry(3, 5.0, lambda key, state: changes.append((key, state)))
    breaker = registry.get("ns.mod", "1.0.0", "http://e:1")
    for _ in range(2):
        breaker.failure()
    breaker.success()  # consecutive failures only
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state == OPEN and not breaker.allow()
    assert breaker.retry_after() == 5
    clock.now += 4.5
    assert not breaker.allow() and breaker.retry_after() == 1  # half a second left
    clock.now += 0.5
    assert breaker.allow() and breaker.state == HALF_OPEN
    assert not breaker.allow()  # one probe at a time
    breaker.failure()
    assert breaker.state == OPEN
    clock.now += 5.0
    assert breaker.allow()
    breaker.success()
    assert breaker.state == CLOSED and breaker.allow()
    assert [s for _, s in changes] == [CLOSED, OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]
    assert registry.states() == {"http://e:1": {"ns.mod@1.0.0": "closed"}}
    assert {key for key, _ in changes} == {("ns.mod", "1.0.0", "http://e:1")}


def test_breakers_are_per_module_version_on_an_upstream() -> None:
    changes: list[tuple[BreakerKey, int]] = []
    registry = BreakerRegistry(2, 5.0, lambda key, state: changes.append((key, state)))
    failing = registry.get("ns.a", "1.0.0", "http://e:1")
    others = [
        registry.get("ns.b", "1.0.0", "http://e:1"),  # another module on that engine
        registry.get("ns.a", "2.0.0", "http://e:1"),  # another version of it
        registry.get("ns.a", "1.0.0", "http://e:2"),  # the same one on another engine
    ]
    assert registry.get("ns.a", "1.0.0", "http://e:1") is failing
    for _ in range(2):
        failing.failure()
    assert failing.state == OPEN
    assert all(b.state == CLOSED and b.allow() for b in others)
    assert registry.states() == {
        "http://e:1": {"ns.a@1.0.0": "open", "ns.a@2.0.0": "closed", "ns.b@1.0.0": "closed"},
        "http://e:2": {"ns.a@1.0.0": "closed"},
    }


def test_breakers_of_rules_gone_from_the_table_are_dropped_and_fall_silent() -> None:
    changes: list[tuple[BreakerKey, int]] = []
    registry = BreakerRegistry(1, 5.0, lambda key, state: changes.append((key, state)))
    gone = registry.get("ns.a", "1.0.0", "http://e:1")
    kept = registry.get("ns.b", "1.0.0", "http://e:1")
    egress = registry.get("egress:api.example.com", "", "https://api.example.com:443")
    forgotten: list[BreakerKey] = []
    registry.retain({kept.key}, forgotten.append)
    assert forgotten == [gone.key]
    assert registry.states() == {
        "http://e:1": {"ns.b@1.0.0": "closed"},
        "https://api.example.com:443": {"egress:api.example.com": "closed"},
    }
    changes.clear()
    gone.failure()  # a request in flight still holds it: nothing is reported any more
    egress.failure()
    assert changes == [(egress.key, OPEN)]
    assert registry.get("ns.a", "1.0.0", "http://e:1") is not gone  # made anew if it returns


@pytest.mark.parametrize("bad", ["items", "/items/{id", "/items/x{id}"])
def test_ingress_route_paths_are_validated(bad: str) -> None:
    with pytest.raises(ValueError):
        _route(bad, [])

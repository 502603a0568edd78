"""Preparer: one ready instance per recently requested module, bounded; no retry loops."""

from __future__ import annotations

from runtime.engine.prepared import MAX_READY_MODULES, Prepared, Preparer


class _Factory:
    def __init__(self, failing: set[str] | None = None) -> None:
        self.made: list[str] = []
        self.discarded: list[str] = []
        self.failing = failing or set()

    def make(self, key: str) -> Prepared | None:
        self.made.append(key)
        if key in self.failing:
            raise RuntimeError("instantiation failed")
        return Prepared(key, store=object(), func=object(), slot=f"slot-{len(self.made)}")

    def discard(self, prepared: Prepared) -> None:
        self.discarded.append(prepared.key)


def test_nothing_is_prepared_before_a_module_is_requested() -> None:
    factory = _Factory()
    preparer = Preparer(factory.make, factory.discard)
    preparer.refill()
    assert factory.made == []
    assert preparer.take("ns.a") is None


def test_refill_prepares_the_requested_module_once_and_take_hands_it_out_once() -> None:
    factory = _Factory()
    preparer = Preparer(factory.make, factory.discard)
    assert preparer.take("ns.a") is None
    preparer.refill()
    preparer.refill()  # already ready: nothing more is made
    assert factory.made == ["ns.a"]
    first = preparer.take("ns.a")
    assert first is not None and first.key == "ns.a"
    assert preparer.take("ns.a") is None  # an instance serves one request only
    preparer.refill()
    second = preparer.take("ns.a")
    assert second is not None and second.slot != first.slot


def test_only_the_most_recently_requested_modules_are_kept_ready() -> None:
    factory = _Factory()
    preparer = Preparer(factory.make, factory.discard)
    keys = [f"ns.m{i}" for i in range(MAX_READY_MODULES + 1)]
    for key in keys[:-1]:
        preparer.take(key)
    preparer.refill()
    assert sorted(factory.made) == sorted(keys[:-1])
    preparer.take(keys[-1])  # pushes the oldest out: its instance is released
    assert factory.discarded == [keys[0]]
    preparer.refill()
    assert factory.made[-1] == keys[-1]
    assert preparer.take(keys[0]) is None


def test_a_module_that_fails_to_prepare_is_tried_again_only_when_requested_again() -> None:
    factory = _Factory(failing={"ns.bad"})
    preparer = Preparer(factory.make, factory.discard)
    preparer.take("ns.bad")
    preparer.refill()
    preparer.refill()
    assert factory.made == ["ns.bad"]
    preparer.take("ns.bad")
    preparer.refill()
    assert factory.made == ["ns.bad", "ns.bad"]

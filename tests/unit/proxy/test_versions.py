"""x-wr-version requirement parsing and matching."""

from __future__ import annotations

import pytest
import semver

from runtime.proxy.versions import InvalidRequirement, parse_requirement

CASES = [
    ("1.2.0", ["1.2.0"], ["1.2.1", "1.3.0"]),
    ("=1.2.0", ["1.2.0"], ["1.2.1"]),
    ("^1.2", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0"]),
    ("^1.2.3", ["1.2.3", "1.4.0"], ["1.2.2", "2.0.0"]),
    ("^0.2", ["0.2.0", "0.2.9"], ["0.3.0", "0.1.0"]),
    ("^0.0.3", ["0.0.3"], ["0.0.4"]),
    ("~1.2", ["1.2.0", "1.2.9"], ["1.3.0", "1.1.0"]),
    ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.2.2"]),
    ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
    (">=1.0,<2", ["1.0.0", "1.99.0"], ["0.9.9", "2.0.0"]),
    (">= 1.0, < 2", ["1.5.0"], ["2.0.0"]),
    (">1.2", ["1.3.0"], ["1.2.9", "1.2.0"]),
    ("<=1.2", ["1.2.9", "0.1.0"], ["1.3.0"]),
    ("1.2", ["1.2.0", "1.2.7"], ["1.3.0"]),
    ("1.*", ["1.0.0", "1.9.0"], ["2.0.0"]),
    ("*", ["0.0.1", "9.9.9"], []),
    ("^1.0.0-beta", ["1.0.0-beta", "1.0.0-rc.1", "1.0.0"], ["1.1.0-beta"]),
]


@pytest.mark.parametrize(("text", "matching", "other"), CASES)
def test_requirement_matches(text: str, matching: list[str], other: list[str]) -> None:
    requirement = parse_requirement(text)
    for version in matching:
        assert requirement.matches(semver.Version.parse(version)), (text, version)
    for version in other:
        assert not requirement.matches(semver.Version.parse(version)), (text, version)


def test_pre_releases_only_match_when_named() -> None:
    assert not parse_requirement("^1").matches(semver.Version.parse("1.5.0-alpha"))


@pytest.mark.parametrize("text", ["", " ", "one", "^", "1.2.3.4", ">=1.0,", "01.2.0", "1.2-pre"])
def test_malformed_requirements_name_the_header(text: str) -> None:
    with pytest.raises(InvalidRequirement, match="x-wr-version"):
        parse_requirement(text)

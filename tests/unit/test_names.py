from __future__ import annotations

import pytest

from runtime.names import InvalidName, check_name, check_version


@pytest.mark.parametrize("name", ["a", "echo", "my-svc-2", "a" * 24, "0x"])
def test_valid_names(name: str) -> None:
    assert check_name(name, "module.name") == name


@pytest.mark.parametrize(
    "name", ["", "A", "a_b", "-a", "a-", "a" * 25, "é", "a.b", "echo\n", "echo\n\n", "\necho"]
)
def test_invalid_names_name_the_field(name: str) -> None:
    with pytest.raises(InvalidName, match=r"^module\.name: "):
        check_name(name, "module.name")


def test_versions() -> None:
    assert check_version("1.2.3-rc.1", "v") == "1.2.3-rc.1"
    with pytest.raises(InvalidName, match="semantic version"):
        check_version("1.2", "module.version")

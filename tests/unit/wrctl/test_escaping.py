"""Values written into generated files come back literally when the file's own parser reads
them (TOML, YAML, supervisord, the shell), or are refused: never a second line, a command, or
a file the service cannot start from."""

from __future__ import annotations

import shlex
import tarfile
import tomllib
from pathlib import Path

import pytest
import yaml as pyyaml
from supervisor.datatypes import dict_of_key_value_pairs

from runtime.engine.config import load_engine_config
from runtime.wire import COMPONENT_HEADER
from wrctl import escaping
from wrctl.bundle.build import build_bundles
from wrctl.config import load_targets
from wrctl.errors import WrctlError
from wrctl.templates import render

HOSTILE = [
    "😀 grinning",  # JSON's \ud83d\ude00 is not TOML
    'quote " and backslash \\ and \\u0041',
    "new\nline, tab\t, cr\r, nul \x00, del \x7f, c1 \x85, ls \u2028",
    "\"\"\"triple\"\"\" and '''single'''",
    "$(touch /tmp/pwned) `id` ${HOME} %(here)s %h #e;#",
    "",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_toml_strings_round_trip(value: str) -> None:
    assert tomllib.loads(f"v = {escaping.toml(value)}")["v"] == value
    table = {"K": value, "odd key": [value, 3, True]}
    assert tomllib.loads(f"t = {escaping.toml(table)}")["t"] == table


def test_toml_is_utf8_not_surrogate_escapes() -> None:
    assert escaping.toml("😀") == '"😀"'
    with pytest.raises(escaping.UnsafeValue):
        escaping.toml("\ud83d")


@pytest.mark.parametrize("value", HOSTILE)
def test_yaml_values_round_trip_through_compose_interpolation(value: str) -> None:
    loaded = pyyaml.safe_load(f"v: {escaping.yaml([value])}")["v"]
    assert [item.replace("$$", "$") for item in loaded] == [value]  # compose unescapes $$


@pytest.mark.parametrize("value", [v for v in HOSTILE if "\n" not in v and "\x00" not in v])
def test_supervisor_environment_round_trips(value: str) -> None:
    if '"' in value and "'" in value:
        with pytest.raises(escaping.UnsafeValue):
            escaping.supervisor_env(value)
        return
    line = 'PYTHONUNBUFFERED="1",K=' + escaping.supervisor_env(value)
    assert dict_of_key_value_pairs(line % {}) == {"PYTHONUNBUFFERED": "1", "K": value}


def test_supervisor_command_round_trips() -> None:
    argv = ["/opt/wr/bin/wr-proxy", "--config", "100%(here)s/a b", "$HOME"]
    line = escaping.supervisor(" ".join(escaping.quote(a) for a in argv))
    assert shlex.split(line % {}) == argv  # supervisord: % expansion, then shlex


def test_systemd_words_escape_specifiers_and_expansion() -> None:
    assert escaping.systemd_exec("@BIN@/wr-engine") == "@BIN@/wr-engine"
    assert escaping.systemd_exec("50%$HOME") == "50%%$$HOME"
    assert escaping.systemd_env('K=a "b" \\c') == '"K=a \\"b\\" \\\\c"'
    assert escaping.systemd_env("K=$x") == "K=$x"  # Environment= does not expand $


def test_dockerfile_value_is_quoted() -> None:
    assert escaping.dockerfile('py"th$on\\') == '"py\\"th\\$on\\\\"'


def test_no_template_writes_a_control_character() -> None:
    with pytest.raises(WrctlError, match=r"Dockerfile: .*control character"):
        render("Dockerfile.j2", base_image="python\nRUN id", python="3.11", cluster="c", target="t")


def test_hostile_env_values_reach_the_engine_literally(tmp_path: Path) -> None:
    """The emoji of issue 17 and its friends: engine.toml parses, and says the same."""
    env = {f"V{i}": value.replace("\x00", "") for i, value in enumerate(HOSTILE)}  # NUL: refused
    lines = "\n".join(f"{key} = {escaping.toml(value)}" for key, value in env.items())
    (tmp_path / "echo.wasm").write_bytes(COMPONENT_HEADER + b"echo")
    (tmp_path / "cluster.toml").write_text(
        '[cluster]\nname = "c"\n[[node]]\nname = "a"\nhost = "local"\n'
        '[[module]]\nnamespace = "example"\nname = "echo"\nversion = "1.0.0"\n'
        f'component = "echo.wasm"\n[module.env]\n{lines}\n'
    )
    bundles = build_bundles(load_targets(tmp_path / "cluster.toml"), tmp_path / "out", "1.0.0")
    with tarfile.open(bundles[1].path) as tar:
        member = tar.extractfile("config/engine-0.toml")
        assert member is not None
        text = member.read().decode()
    assert "\\ud83d" not in text and "😀" in text
    assert tomllib.loads(text)["module"][0]["env"] == env
    rendered = tmp_path / "engine.toml"
    rendered.write_text(text.replace("@RELEASE@", "/r").replace("@WORKDIR@", "/w"))
    assert load_engine_config(rendered).module[0].env == env

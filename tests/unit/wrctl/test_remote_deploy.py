"""Pure parts of the remote deploy: connection settings from cluster.toml, attribute checks,
jump host specs, shell wrapping for env and sudo, program names."""

from __future__ import annotations

from pathlib import Path

import pytest

from wrctl.config import load_cluster
from wrctl.deploy.formats import program_name
from wrctl.deploy.hosts import ConnectOptions, connect_options, open_host
from wrctl.deploy.ssh import SshError, parse_jump_host
from wrctl.deploy.transport import (
    HostCommandError,
    Result,
    SudoRefused,
    check_sudo,
    shell_command,
    short_command,
)
from wrctl.errors import WrctlError


def test_connect_options_come_from_the_node_over_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "cluster.toml"
    toml.write_text(
        '[cluster]\nname = "c"\n'
        '[defaults]\nssh_key = "~/.ssh/deploy_key"\nsudo = true\n'
        '[[node]]\nname = "a"\nhost = "10.0.0.5"\njump_host = "ops@bastion:2222"\n'
        '[[node]]\nname = "b"\nhost = "10.0.0.6"\nsudo = false\n'
    )
    config = load_cluster(toml)
    a = connect_options(config, "node.a", known_hosts="/k", accept_new_host_key=True)
    assert a == ConnectOptions("~/.ssh/deploy_key", "ops@bastion:2222", True, "/k", True)
    b = connect_options(config, "node.b")
    assert (b.jump_host, b.sudo, b.known_hosts) == (None, False, "~/.ssh/known_hosts")
    with pytest.raises(WrctlError, match="no \\[\\[node\\]\\] named 'zz'"):
        connect_options(config, "node.zz")


def test_bad_attributes_are_named() -> None:
    attrs = {"host": "10.0.0.9", "format": "podman", "workdir": "/opt/w"}
    with pytest.raises(WrctlError, match=r"node\.x: format 'podman': expected one of"):
        open_host(attrs, "node.x")
    attrs = {"host": "10.0.0.9", "format": "systemd", "workdir": "opt/w"}
    with pytest.raises(WrctlError, match="workdir 'opt/w' on a remote host must be absolute"):
        open_host(attrs, "node.x")


def test_parse_jump_host() -> None:
    assert parse_jump_host("bastion", "deploy").label == "deploy@bastion"
    assert parse_jump_host("ops@bastion:2222", "deploy").label == "ops@bastion:2222"
    assert parse_jump_host("[::1]:22", "d").host == "::1"
    with pytest.raises(SshError, match="jump_host 'a:b:c'"):
        parse_jump_host("a:b:c", "deploy")


def test_shell_command_sets_env_inline_and_sudo_never_prompts() -> None:
    assert shell_command("ls", None, False) == "ls"
    assert (
        shell_command("echo $A", {"A": "x y"}, False)
        == "sh -c 'export A='\"'\"'x y'\"'\"'; echo $A'"
    )
    assert shell_command("id", None, True) == "sudo -n -- sh -c id"
    with pytest.raises(ValueError, match="'A-B' is not a valid shell name"):
        shell_command("true", {"A-B": "1"}, False)


def test_a_sudo_password_prompt_becomes_a_clear_error() -> None:
    asked = Result("id", 1, "", "sudo: a password is required\n")
    with pytest.raises(SudoRefused, match="NOPASSWD"):
        check_sudo("h", "deploy", asked)
    check_sudo("h", "deploy", Result("false", 1, "", "plain failure"))  # not sudo's doing


def test_program_names() -> None:
    assert program_name("node-a", "proxy") == "wr-a-proxy"
    assert program_name("node-a", "engine-0") == "wr-a-engine-0"
    assert program_name("manager", "manager") == "wr-manager"
    assert program_name("node-a", "wr-a-proxy") == "wr-a-proxy"


def test_errors_show_a_long_script_by_its_first_line() -> None:
    script = "set -e\nfor f in a b; do\n  install $f\ndone\n"
    error = HostCommandError("h", Result(script, 3, "", "install: no such file\n"))
    assert str(error) == "h: `set -e ...` exited 3\n  install: no such file"
    assert short_command("x" * 200).endswith("x ...")

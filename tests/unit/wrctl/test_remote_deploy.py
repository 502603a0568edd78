"""Pure parts of the remote deploy: connection settings resolved from cluster.toml and the
command line, target checks, jump host specs, shell wrapping for env and sudo, program names."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from wrctl.config import Overrides, load_cluster, resolve_targets
from wrctl.config.targets import HostTarget, Reach
from wrctl.deploy.formats import program_name
from wrctl.deploy.hosts import open_host
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


def test_connection_settings_come_from_the_node_over_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "cluster.toml"
    toml.write_text(
        '[cluster]\nname = "c"\n'
        '[defaults]\nssh_key = "~/.ssh/deploy_key"\nsudo = true\n'
        '[[node]]\nname = "a"\nhost = "10.0.0.5"\njump_host = "ops@bastion:2222"\n'
        '[[node]]\nname = "b"\nhost = "10.0.0.6"\nsudo = false\nssh_port = 2200\n'
    )
    config = load_cluster(toml)
    given = Overrides(known_hosts="/k", accept_new_host_key=True)
    a = resolve_targets(config, given).node("a").place
    assert a.reach == Reach("deploy", 22, "~/.ssh/deploy_key", "ops@bastion:2222", "/k", True)
    assert a.sudo
    b = resolve_targets(config).node("b").place
    assert (b.reach.jump_host, b.sudo, b.reach.known_hosts) == (None, False, "~/.ssh/known_hosts")
    assert b.reach.ssh_port == 2200
    with pytest.raises(WrctlError, match="'zz' is not a node of"):
        resolve_targets(config).node("zz")


def _place(fmt: str, workdir: str) -> HostTarget:
    return HostTarget("node.x", "node-x", "10.0.0.9", fmt, workdir)


def test_bad_targets_are_named() -> None:
    with pytest.raises(WrctlError, match=r"node\.x: format 'podman': expected one of"):
        open_host(_place("podman", "/opt/w"))
    with pytest.raises(WrctlError, match="workdir 'opt/w' on a remote host must be absolute"):
        open_host(_place("systemd", "opt/w"))
    # a host from a release record (not from cluster.toml) never reaches SSH as an option
    hostile = replace(_place("systemd", "/opt/w"), host="-oProxyCommand=touch /tmp/pwned")
    with pytest.raises(WrctlError, match=r"node\.x: host '-oProxyCommand=.*' is not a host name"):
        open_host(hostile)


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

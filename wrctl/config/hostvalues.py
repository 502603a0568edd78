"""Rules for the values cluster.toml writes onto hosts: host names and users (they reach SSH),
paths that install.sh writes into service files and scripts, Docker image references, and
free text that must stay one line. Each returns why a value is refused, or None."""

from __future__ import annotations

import ipaddress
import re

# The characters a workdir (or any path install.sh substitutes into TOML, INI, YAML, systemd
# units and shell) may hold: none of them means anything in those syntaxes, so no escaping is
# needed there. The same class, as a regex and as a shell pattern, guards install.sh itself.
PATH_CHARS = "A-Za-z0-9._/+-"
_PATH = re.compile(f"[{PATH_CHARS}]+")
_TILDE_PATH = re.compile(f"~?[{PATH_CHARS}]*")
PATH_RULE = "letters, digits and . _ / + - (it is written into service files on the host)"

_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_JUMP = re.compile(r"(?:(?P<user>[^@]+)@)?(?P<host>\[[^\]]*\]|[^:\[\]]+)(?::(?P<port>\d{1,5}))?")
# A Docker image reference: [registry[:port]/]path[:tag][@sha256:digest]
_IMAGE_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"(?:[A-Za-z0-9.-]+(?::\d+)?/)?{_IMAGE_PART}(?:/{_IMAGE_PART})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[0-9a-f]{64})?"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def text_problem(value: str) -> str | None:
    """Why a free-form value (a file path, a URL) is refused: a control character such as a
    newline, which would start a new line in a generated file or a command."""
    found = _CONTROL.search(value)
    if found is None:
        return None
    return f"{value!r} contains the control character {found.group()!r}; expected one line"


def host_problem(value: str) -> str | None:
    """Why value is not "local", an IP address or a host name. A leading '-' is refused
    with the rest: a host is never an option of any command."""
    if value == "local" or _is_ip(value):
        return None
    labels = value.removesuffix(".").split(".")
    if len(value) <= 253 and all(_LABEL.fullmatch(label) for label in labels):
        return None
    return (
        f"{value!r} is not a host name or IP address "
        '(expected "local", an address like 10.0.1.5, or a name like node-a.example.com)'
    )


def user_problem(value: str) -> str | None:
    if _USER.fullmatch(value):
        return None
    return f"{value!r} is not a user name (expected like deploy: [A-Za-z_][A-Za-z0-9_.-]*)"


def jump_host_problem(value: str) -> str | None:
    """Why value is not `[user@]host[:port]` (an IPv6 host in brackets)."""
    match = _JUMP.fullmatch(value)
    host = match["host"].removeprefix("[").removesuffix("]") if match else ""
    port = int(match["port"]) if match and match["port"] else 22
    if (
        match
        and host != "local"
        and host_problem(host) is None
        and (match["user"] is None or user_problem(match["user"]) is None)
        and 1 <= port <= 65535
    ):
        return None
    return f"{value!r} is not a jump host (expected host, host:port, user@host or user@host:port)"


def path_problem(value: str) -> str | None:
    """Why value cannot be a workdir (or another path written into service files)."""
    if _TILDE_PATH.fullmatch(value) and value:
        return None
    return f"{value!r} may only contain {PATH_RULE}"


def resolved_path_problem(value: str) -> str | None:
    """Why an absolute path, as the host will see it, cannot be written into service files."""
    return None if _PATH.fullmatch(value) else f"{value!r} may only contain {PATH_RULE}"


def command_problem(value: str) -> str | None:
    """Why value is not a command name or path (`python3`, `/usr/bin/python3.11`)."""
    if _PATH.fullmatch(value) and not value.startswith("-"):
        return None
    return f"{value!r} is not a command or path (expected like python3 or /usr/bin/python3.11)"


def image_problem(value: str) -> str | None:
    """Why value is not a Docker image reference (`python:3.11-slim`, `reg:5000/py@sha256:..`)."""
    if _IMAGE.fullmatch(value):
        return None
    return (
        f"{value!r} is not a Docker image reference "
        "(expected like python:3.11-slim-bookworm or registry.example.com/team/python:3.11)"
    )


def _is_ip(value: str) -> bool:
    if "%" in value:  # an IPv6 scope (fe80::1%eth0) may hold anything: not taken
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True

"""The errors wrctl reports; the CLI maps each to a message and an exit code in one place."""

from __future__ import annotations


class WrctlError(Exception):
    """Base of every error wrctl reports to the user (never shown with a traceback)."""


class ConfigError(WrctlError):
    """cluster.toml is missing, unparsable or invalid; the message lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class ManagerUnreachable(WrctlError):
    """The manager could not be reached over gRPC."""


class StalePlanError(WrctlError):
    """A saved plan whose live state moved since it was made."""


class LockHeldError(WrctlError):
    """Another apply holds the manager's apply lock."""


class OtherClusterError(WrctlError):
    """The manager reached serves another cluster than the cluster.toml being applied."""

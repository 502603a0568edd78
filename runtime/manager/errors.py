"""Domain errors of the manager; the gRPC layer maps each to one status code."""

from __future__ import annotations


class ManagerError(Exception):
    """Base of every error the manager reports to a caller."""


class InvalidArgument(ManagerError):
    """A request field is malformed; the message names the field."""


class NotFound(ManagerError):
    """The request names something the manager does not know."""


class FailedPrecondition(ManagerError):
    """The request is well formed but the state does not allow it (lock not held, ...)."""


class StartupError(Exception):
    """The manager cannot start; the message is one line naming the cause."""


class Unimplemented(ManagerError):
    """The RPC belongs to a later issue."""

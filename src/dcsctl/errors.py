"""The one error root: every failure a user sees names its cause and its fix."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    SPEC = 3
    ENVIRONMENT = 4
    UNHEALTHY = 5
    INTERRUPTED = 130


class DcsctlError(Exception):
    """An expected failure: rendered as `error: <message>` / `fix: <fix>`, never a traceback."""

    exit_code = ExitCode.FAILED

    def __init__(self, message: str, *, fix: str = "", details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.details = details


class UsageError(DcsctlError):
    """An argument on the command line is malformed."""

    exit_code = ExitCode.USAGE


class SpecError(DcsctlError):
    """The spec is broken; `details` holds one line per problem, each with its YAML path."""

    exit_code = ExitCode.SPEC


class EnvironmentProblem(DcsctlError):
    """Something outside the spec is wrong: a missing binary, a busy port, a foreign state dir."""

    exit_code = ExitCode.ENVIRONMENT


class ClusterUnhealthy(DcsctlError):
    exit_code = ExitCode.UNHEALTHY


class EtcdRequestFailed(DcsctlError):
    """etcd answered a request with an error (mapped from its gRPC status)."""


class NotFound(DcsctlError):
    """A thing the user named does not exist (a cluster, a member, a key)."""

"""Errors a user can fix. Each carries the process exit code; `cli.main` is the one place that catches them."""

from __future__ import annotations


class PinnerError(Exception):
    """A problem the user can fix. str(e) is the whole message; exit_code is the process status."""

    exit_code = 2


class ConfigError(PinnerError):
    """Bad matrix, requirements file or command line: unknown key, GPU, target; malformed TOML."""


class PlanError(PinnerError):
    """A target no torch build can serve; the message lists each refused target and its fix."""


class ResolveError(PinnerError):
    """The resolver found no solution, or the engine failed."""


class NetworkError(PinnerError):
    """An index could not be reached (after retries)."""

    exit_code = 1


class StaleError(PinnerError):
    """`check` found stale or missing files, or `--frozen` found a stale lock."""

    exit_code = 1


class CheckFailed(PinnerError):
    """`verify` or `doctor` found a failed check."""

    exit_code = 1


class TargetsFailed(PinnerError):
    """Some targets could not be resolved; the others were written."""

    exit_code = 1


class OutputError(PinnerError):
    """A file could not be written (disk full, read-only, not a folder); the message names it."""

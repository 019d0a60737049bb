"""The harness exception family.

Library code raises these; the CLI turns each into one line on stderr (what, where, how
to fix) and a non-zero exit code. Nothing else is meant to reach the user as a traceback.
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base class: a problem the user can fix. ``exit_code`` is what the CLI exits with."""

    exit_code = 2


class ConfigError(HarnessError):
    """A bad flag, ``--set`` override or config file."""


class PluginError(HarnessError):
    """A plugin failed to load, or registered something invalid."""


class RegistryError(HarnessError):
    """A duplicate or unknown name in one of the registries."""


class TaskSpecError(HarnessError):
    """A task definition (Python ``TaskSpec`` or TOML card) is invalid."""


class DataError(HarnessError):
    """Input data is missing or malformed. Messages name file, line and field, never content."""


class RunError(HarnessError):
    """A run cannot start or continue (existing output, missing state to resume, ...)."""


class JobsFailed(RunError):
    """Jobs of a run failed (each recorded in ``jobs/<key>/error.json``); the others finished."""


class AnalysisError(HarnessError, ValueError):
    """An analysis is undefined on its input (constant representation, zero gradient, too few rows, ...).

    A ``ValueError`` for callers of the pure functions in ``harness.analyses``, a ``HarnessError``
    for the CLI, which prints it as one line. The analyses raise it instead of returning NaN.
    """


class LeaderboardError(HarnessError):
    """A leaderboard record or baseline is missing, invalid, or not comparable."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a batch scheduler, torchrun stopping its ranks), handled as Ctrl-C is: the
    same cleanup runs, and the command exits with 143."""

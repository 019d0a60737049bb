"""The one exception the analyses raise."""

from __future__ import annotations

from harness.errors import HarnessError


class AnalysisError(HarnessError, ValueError):
    """An analysis is undefined on its input (constant representation, zero gradient, too few rows, ...).

    A ``ValueError`` for callers of the pure functions, a ``HarnessError`` for the CLI, which
    prints it as one line. The analyses raise it instead of returning NaN.
    """

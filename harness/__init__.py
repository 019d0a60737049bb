"""harness: a pluggable multi-task benchmark harness for transformer text classifiers.

The names below are the public plugin API (see ``harness.api``).
"""

from harness.api import (
    MISSING_LABEL,
    Grouper,
    InputReader,
    LoadContext,
    Metric,
    Predictor,
    ProblemType,
    Register,
    TaskSpec,
    hookimpl,
)
from harness.data.cards import load_cards
from harness.errors import DataError, HarnessError

__version__ = "0.1.0"

__all__ = [
    "MISSING_LABEL",
    "DataError",
    "Grouper",
    "HarnessError",
    "InputReader",
    "LoadContext",
    "Metric",
    "Predictor",
    "ProblemType",
    "Register",
    "TaskSpec",
    "__version__",
    "hookimpl",
    "load_cards",
]

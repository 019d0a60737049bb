"""harness: a pluggable multi-task benchmark harness for transformer text classifiers.

The names below are the public plugin API (see ``harness.api``).
"""

from harness.api import (
    MISSING_LABEL,
    Grouper,
    LoadContext,
    Metric,
    Predictor,
    ProblemType,
    Register,
    TaskSpec,
    hookimpl,
)
from harness.errors import HarnessError

__version__ = "0.1.0"

__all__ = [
    "MISSING_LABEL",
    "Grouper",
    "HarnessError",
    "LoadContext",
    "Metric",
    "Predictor",
    "ProblemType",
    "Register",
    "TaskSpec",
    "__version__",
    "hookimpl",
]

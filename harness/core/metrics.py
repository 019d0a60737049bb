"""Local ``evaluate`` metric modules wrapping scikit-learn and SciPy.

``evaluate.load("accuracy")`` fetches its script from the hub, so the harness defines its
metrics as ``evaluate.Metric`` subclasses here and instantiates them in memory: no network,
no cache files, safe when several ranks compute at once. ``metric_fn(name)`` gives the pure
``(predictions, references) -> float`` function that the registry stores.

Each metric declares the problem types it scores (checked by calling it on each: see
tests/test_metrics.py). Classification metrics take class indices or 0/1 rows, never regression
floats (they would be truncated to integers); correlation and error metrics take real values
only: class indices are not, and ordinal labels have ``quadratic_kappa``.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from harness.api import ProblemType

SINGLE, MULTI, REGRESSION = ProblemType.SINGLE_LABEL, ProblemType.MULTI_LABEL, ProblemType.REGRESSION

# name -> (higher_is_better, problem types it scores, description)
METRICS: dict[str, tuple[bool, tuple[ProblemType, ...], str]] = {
    "accuracy": (True, (SINGLE, MULTI), "fraction of exact matches (subset accuracy for multi-label)"),
    "f1_macro": (True, (SINGLE, MULTI), "unweighted mean of per-class F1"),
    "f1_micro": (True, (SINGLE, MULTI), "micro-averaged F1 over all label decisions (= accuracy for single-label)"),
    "matthews_correlation": (True, (SINGLE,), "Matthews correlation coefficient"),
    "quadratic_kappa": (True, (SINGLE,), "Cohen's kappa with quadratic weights (ordinal labels)"),
    "pearson": (True, (REGRESSION,), "Pearson correlation"),
    "spearman": (True, (REGRESSION,), "Spearman rank correlation"),
    "mse": (False, (REGRESSION,), "mean squared error"),
}


def _compute(name: str, predictions: np.ndarray, references: np.ndarray) -> float:
    from scipy import stats
    from sklearn import metrics as skm

    if name == "accuracy":
        return float(skm.accuracy_score(references, predictions))
    if name == "f1_macro":
        return float(skm.f1_score(references, predictions, average="macro", zero_division=0))
    if name == "f1_micro":
        return float(skm.f1_score(references, predictions, average="micro", zero_division=0))
    if name == "matthews_correlation":
        return float(skm.matthews_corrcoef(references, predictions))
    if name == "quadratic_kappa":
        if len(set(references.tolist()) | set(predictions.tolist())) < 2:
            return 1.0  # one class everywhere: perfect agreement, kappa undefined
        return float(skm.cohen_kappa_score(references, predictions, weights="quadratic"))
    if name in ("pearson", "spearman"):
        correlation = stats.pearsonr if name == "pearson" else stats.spearmanr
        with warnings.catch_warnings():
            # constant input: the correlation is undefined and scored 0 below, by design; no warning
            warnings.simplefilter("ignore", stats.ConstantInputWarning)
            return _finite(correlation(predictions, references)[0])
    if name == "mse":
        return float(np.mean((predictions - references) ** 2))
    raise KeyError(name)


def _finite(value: float) -> float:
    # A constant prediction has undefined correlation; score it as no correlation.
    return float(value) if np.isfinite(value) else 0.0


@functools.cache
def _module(name: str) -> Any:
    import datasets
    import evaluate

    _higher, problem_types, description = METRICS[name]
    shapes = {
        SINGLE: datasets.Value("int64"),  # class indices
        MULTI: datasets.Sequence(datasets.Value("int64")),  # 0/1 rows
        REGRESSION: datasets.Value("float64"),
    }
    values = [shapes[p] for p in problem_types]

    class LocalMetric(evaluate.Metric):
        def _info(self) -> evaluate.MetricInfo:
            return evaluate.MetricInfo(
                description=description,
                citation="scikit-learn / SciPy",
                inputs_description="predictions and references",
                features=[datasets.Features({"predictions": v, "references": v}) for v in values],
            )

        def _compute(self, predictions: Any, references: Any) -> dict[str, float]:
            return {name: _compute(name, np.asarray(predictions), np.asarray(references))}

    LocalMetric.__name__ = f"LocalMetric_{name}"
    return LocalMetric(keep_in_memory=True)


def metric_fn(name: str) -> Callable[[Any, Any], float]:
    """The pure function registered for metric ``name``, computed through its evaluate module."""

    def fn(predictions: Any, references: Any) -> float:
        module = _module(name)
        result = module.compute(
            predictions=np.asarray(predictions).tolist(), references=np.asarray(references).tolist()
        )
        return float(result[name])

    fn.__name__ = name
    return fn

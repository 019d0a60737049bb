"""The local evaluate metric modules against direct scikit-learn / SciPy references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from harness import ProblemType
from harness.core.metrics import METRICS, metric_fn

rng = np.random.default_rng(0)
Y = rng.integers(0, 4, size=200)
P = np.where(rng.random(200) < 0.6, Y, rng.integers(0, 4, size=200))
R = rng.normal(size=200)
S = R + rng.normal(scale=0.7, size=200)
ML_Y = rng.integers(0, 2, size=(200, 5))
ML_P = np.where(rng.random((200, 5)) < 0.7, ML_Y, 1 - ML_Y)

REFERENCES = {
    "accuracy": (P, Y, skm.accuracy_score(Y, P)),
    "f1_macro": (P, Y, skm.f1_score(Y, P, average="macro")),
    "matthews_correlation": (P, Y, skm.matthews_corrcoef(Y, P)),
    "quadratic_kappa": (P, Y, skm.cohen_kappa_score(Y, P, weights="quadratic")),
    "f1_micro": (ML_P, ML_Y, skm.f1_score(ML_Y, ML_P, average="micro")),
    "f1_micro/single": (P, Y, skm.accuracy_score(Y, P)),  # micro-F1 of single-label classes is accuracy
    "pearson": (S, R, stats.pearsonr(S, R)[0]),
    "spearman": (S, R, stats.spearmanr(S, R)[0]),
    "mse": (S, R, np.mean((S - R) ** 2)),
}


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metric_matches_reference(name):
    predictions, references, expected = REFERENCES[name]
    assert metric_fn(name)(predictions, references) == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize("name", sorted(k for k in REFERENCES if "/" in k))
def test_metric_matches_reference_on_another_problem_type(name):
    predictions, references, expected = REFERENCES[name]
    assert metric_fn(name.split("/")[0])(predictions, references) == pytest.approx(expected, abs=1e-9)


def test_every_metric_has_a_reference():
    assert {k.split("/")[0] for k in REFERENCES} == set(METRICS)


SAMPLES = {ProblemType.SINGLE_LABEL: (P, Y), ProblemType.MULTI_LABEL: (ML_P, ML_Y), ProblemType.REGRESSION: (S, R)}
CONSTANT = {  # one prediction everywhere
    ProblemType.SINGLE_LABEL: (np.zeros_like(Y), Y),
    ProblemType.MULTI_LABEL: (np.zeros_like(ML_Y), ML_Y),
    ProblemType.REGRESSION: (np.ones_like(R), R),
}


def test_declared_problem_types():
    single, multi, regression = ProblemType
    declared = {name: set(types) for name, (_, types, _) in METRICS.items()}
    assert declared == {
        "accuracy": {single, multi},
        "f1_macro": {single, multi},
        "f1_micro": {single, multi},
        "matthews_correlation": {single},  # sklearn: "multilabel-indicator is not supported"
        "quadratic_kappa": {single},  # sklearn: "unhashable type: 'list'" on 0/1 rows
        "pearson": {regression},
        "spearman": {regression},
        "mse": {regression},
    }


@pytest.mark.parametrize("problem", list(ProblemType))
@pytest.mark.parametrize("name", sorted(METRICS))
def test_a_metric_scores_exactly_the_problem_types_it_can(name, problem):
    """Declared: a finite score. Not declared: the call fails, or would score the wrong kind of value
    (class metrics on regression floats truncate them; correlations of class indices mean nothing)."""
    predictions, references = SAMPLES[problem]
    if problem in METRICS[name][1]:
        assert np.isfinite(metric_fn(name)(predictions, references))
    elif problem is ProblemType.MULTI_LABEL:
        with pytest.raises(Exception):  # noqa: B017,PT011 -- sklearn or evaluate, each its own error
            metric_fn(name)(predictions, references)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_constant_predictions_score_without_warnings(name):
    for problem in METRICS[name][1]:
        predictions, references = CONSTANT[problem]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert np.isfinite(metric_fn(name)(predictions, references))


def test_multilabel_accuracy_is_subset_accuracy():
    assert metric_fn("accuracy")(ML_P, ML_Y) == pytest.approx(np.mean((ML_P == ML_Y).all(axis=1)))


def test_constant_predictions_have_zero_correlation_not_nan():
    assert metric_fn("pearson")(np.ones(10), np.arange(10.0)) == 0.0
    assert metric_fn("spearman")(np.ones(10), np.arange(10.0)) == 0.0


def test_direction_flags():
    assert METRICS["mse"][0] is False
    assert all(METRICS[m][0] for m in METRICS if m != "mse")

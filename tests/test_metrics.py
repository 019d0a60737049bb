"""The local evaluate metric modules against direct scikit-learn / SciPy references."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from harness.metrics import METRICS, metric_fn

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
    "pearson": (S, R, stats.pearsonr(S, R)[0]),
    "spearman": (S, R, stats.spearmanr(S, R)[0]),
    "mse": (S, R, np.mean((S - R) ** 2)),
}


@pytest.mark.parametrize("name", sorted(METRICS))
def test_metric_matches_reference(name):
    predictions, references, expected = REFERENCES[name]
    assert metric_fn(name)(predictions, references) == pytest.approx(expected, abs=1e-9)


def test_every_metric_has_a_reference():
    assert set(REFERENCES) == set(METRICS)


def test_multilabel_accuracy_is_subset_accuracy():
    assert metric_fn("accuracy")(ML_P, ML_Y) == pytest.approx(np.mean((ML_P == ML_Y).all(axis=1)))


@pytest.mark.parametrize("name", ["pearson", "spearman"])
def test_constant_predictions_have_zero_correlation_and_no_warning(name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # SciPy's ConstantInputWarning is noise: the score is 0 by design
        assert metric_fn(name)(np.ones(10), np.arange(10.0)) == 0.0


def test_direction_flags():
    assert METRICS["mse"][0] is False
    assert all(METRICS[m][0] for m in METRICS if m != "mse")

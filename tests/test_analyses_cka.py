"""The mathematics of harness.analyses.cka, in float64, against naive references and hand-computed values."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

from harness.analyses import cka
from harness.analyses.cka import (
    hsic_biased,
    hsic_unbiased,
    layerwise_cka,
    linear_cka,
    linear_cka_debiased,
    standardize_features,
)
from harness.errors import AnalysisError, HarnessError

ESTIMATORS = [linear_cka, linear_cka_debiased]
SHAPES = [(40, 5), (8, 20)]  # n > p: feature-space form; n < p: Gram form


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def random_orthogonal(p: int, seed: int) -> np.ndarray:
    q, r = np.linalg.qr(rng(seed).normal(size=(p, p)))
    return q * np.sign(np.diag(r))  # a Haar-distributed orthogonal matrix


# --- naive references, written from the papers' formulas with no shortcuts -----------------------


def naive_hsic_biased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(k @ h @ l @ h)) / (n - 1) ** 2


def naive_hsic_unbiased(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Song et al. 2012, eq. 5, term by term with explicit sums."""
    n = k.shape[0]
    kt = [[0.0 if i == j else k[i][j] for j in range(n)] for i in range(n)]
    lt = [[0.0 if i == j else l[i][j] for j in range(n)] for i in range(n)]
    trace = sum(kt[i][j] * lt[j][i] for i in range(n) for j in range(n))
    sum_k = sum(kt[i][j] for i in range(n) for j in range(n))
    sum_l = sum(lt[i][j] for i in range(n) for j in range(n))
    one_kl_one = sum(kt[i][j] * lt[j][q] for i in range(n) for j in range(n) for q in range(n))
    return (trace + sum_k * sum_l / ((n - 1) * (n - 2)) - 2 / (n - 2) * one_kl_one) / (n * (n - 3))


def hsic_u_statistic(k, l):  # noqa: E741
    """HSIC as the U-statistic it estimates, E[k l'] + E[k] E[l] - 2 E[k_ij l_iq], over distinct indices."""
    n = len(k)
    idx = range(n)
    first = sum(k[i][j] * l[i][j] for i, j in itertools.permutations(idx, 2)) / (n * (n - 1))
    second = sum(k[i][j] * l[q][r] for i, j, q, r in itertools.permutations(idx, 4)) / (n * (n - 1) * (n - 2) * (n - 3))
    third = sum(k[i][j] * l[i][q] for i, j, q in itertools.permutations(idx, 3)) / (n * (n - 1) * (n - 2))
    return first + second - 2 * third


def naive_cka(x: np.ndarray, y: np.ndarray, hsic) -> float:
    k, l = x @ x.T, y @ y.T  # noqa: E741 -- uncentred linear kernels: the estimators centre
    return hsic(k, l) / math.sqrt(hsic(k, k) * hsic(l, l))


# --- identity and invariances ---------------------------------------------------------------------


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("shape", SHAPES)
def test_cka_of_a_representation_with_itself_is_one(estimator, shape):
    x = rng().normal(size=shape)
    assert estimator(x, x) == pytest.approx(1.0, abs=1e-12)
    assert estimator(x, x, standardize=True) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("shape", SHAPES)
def test_cka_is_invariant_to_rotation_isotropic_scaling_and_translation(estimator, shape):
    x, y = rng(1).normal(size=shape), rng(2).normal(size=shape) + rng(1).normal(size=shape)
    reference = estimator(x, y)
    q = random_orthogonal(shape[1], seed=3)
    assert estimator(x @ q, y) == pytest.approx(reference, abs=1e-12)
    assert estimator(x, y @ q) == pytest.approx(reference, abs=1e-12)
    assert estimator(7.5 * x, 0.01 * y) == pytest.approx(reference, abs=1e-12)
    assert estimator(x + 100.0, y - rng(4).normal(size=shape[1])) == pytest.approx(reference, abs=1e-9)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_cka_is_not_invariant_to_an_arbitrary_invertible_linear_map(estimator):
    x = rng(5).normal(size=(50, 6))
    a = np.diag([1.0, 1.0, 1.0, 1.0, 1.0, 20.0]) @ rng(6).normal(size=(6, 6))  # invertible, far from orthogonal
    assert abs(np.linalg.det(a)) > 1e-3
    assert estimator(x, x @ a) < 0.9  # so the invariance tests above can fail


# --- against naive references ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
def test_biased_cka_equals_the_naive_gram_matrix_implementation(shape):
    x, y = rng(7).normal(size=shape), rng(8).normal(size=(shape[0], 3)) + 2.0
    assert linear_cka(x, y) == pytest.approx(naive_cka(x, y, naive_hsic_biased), abs=1e-12)
    assert hsic_biased(x @ x.T, y @ y.T) == pytest.approx(naive_hsic_biased(x @ x.T, y @ y.T), rel=1e-12)


def test_biased_cka_feature_space_form_equals_gram_form():
    x, y = rng(9).normal(size=(12, 4)), rng(10).normal(size=(12, 7))
    xc, yc = x - x.mean(0), y - y.mean(0)
    feature_form = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert linear_cka(x, y) == pytest.approx(feature_form, abs=1e-12)
    assert naive_cka(x, y, naive_hsic_biased) == pytest.approx(feature_form, abs=1e-12)
    for debiased in (False, True):  # the internal feature-space and Gram paths agree for both estimators
        gram, features = (
            cka._cross(
                cka._prepare(x, gram=g, standardize=False, name="x"),
                cka._prepare(y, gram=g, standardize=False, name="y"),
                debiased=debiased,
            )
            for g in (True, False)
        )
        assert gram == pytest.approx(features, rel=1e-12)


def test_unbiased_hsic_equals_song_et_al_eq5_written_with_loops_and_the_u_statistic():
    n = 6
    x, y = rng(11).normal(size=(n, 3)), rng(12).normal(size=(n, 2)) + 3.0
    k, l = x @ x.T, np.exp(-((y[:, None, :] - y[None, :, :]) ** 2).sum(-1))  # noqa: E741 -- linear and RBF kernels
    expected = naive_hsic_unbiased(k, l)
    assert hsic_unbiased(k, l) == pytest.approx(expected, rel=1e-12)
    assert hsic_u_statistic(k, l) == pytest.approx(expected, rel=1e-10)  # HSIC_1 is exactly this U-statistic


@pytest.mark.parametrize("shape", [(9, 3), (6, 10)])
def test_debiased_cka_equals_the_naive_unbiased_hsic_on_uncentred_grams(shape):
    x, y = rng(13).normal(size=shape) + 5.0, rng(14).normal(size=(shape[0], 4)) - 1.0
    assert linear_cka_debiased(x, y) == pytest.approx(naive_cka(x, y, naive_hsic_unbiased), abs=1e-10)


# --- hand-computed values -------------------------------------------------------------------------


def test_one_dimensional_cka_is_the_squared_correlation_computed_by_hand():
    # x = (0, 1, 2, 3), y = (0, 1, 0, 1): centred (-3/2, -1/2, 1/2, 3/2) and (-1/2, 1/2, -1/2, 1/2),
    # <x, y> = 1, |x|^2 = 5, |y|^2 = 1, so CKA = <x, y>^2 / (|x|^2 |y|^2) = r^2 = 1/5.
    x, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([[0.0], [1.0], [0.0], [1.0]])
    assert linear_cka(x, y) == pytest.approx(1 / 5, abs=1e-15)


def test_four_points_on_a_cross_by_hand():
    # X: the points (1,0), (0,1), (-1,0), (0,-1) (already centred); Y: their first coordinate.
    # Biased: X^T X = 2 I, Y^T Y = [2], Y^T X = [2, 0]  =>  CKA = 4 / (sqrt(8) * 2) = 1/sqrt(2).
    # Unbiased, from K = X X^T and L = Y Y^T with zero diagonals (n = 4, n(n-3) = 4, (n-1)(n-2) = 6):
    #   K~ has -1 at (1,3), (3,1), (2,4), (4,2); L~ has -1 at (1,3), (3,1).
    #   HSIC_1(K, L) = (2 + (-4)(-2)/6 - 2/2 * 2) / 4 = 1/3,
    #   HSIC_1(K, K) = (4 + 16/6 - 4) / 4 = 2/3,  HSIC_1(L, L) = (2 + 4/6 - 2) / 4 = 1/6,
    #   debiased CKA = (1/3) / sqrt(2/3 * 1/6) = 1.
    x = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    y = x[:, :1]
    k, l = x @ x.T, y @ y.T  # noqa: E741
    assert linear_cka(x, y) == pytest.approx(1 / math.sqrt(2), abs=1e-15)
    assert hsic_unbiased(k, l) == pytest.approx(1 / 3, abs=1e-15)
    assert hsic_unbiased(k, k) == pytest.approx(2 / 3, abs=1e-15)
    assert hsic_unbiased(l, l) == pytest.approx(1 / 6, abs=1e-15)
    assert linear_cka_debiased(x, y) == pytest.approx(1.0, abs=1e-15)
    exact = [[Fraction(int(v)) for v in row] for row in k], [[Fraction(int(v)) for v in row] for row in l]
    assert hsic_u_statistic(*exact) == Fraction(1, 3)  # the same value in exact arithmetic


# --- the bias the debiased estimator removes -------------------------------------------------------


def test_independent_features_biased_cka_is_inflated_at_small_n_debiased_is_near_zero():
    n, p = 20, 50
    biased, debiased = [], []
    for seed in range(30):  # one draw of debiased CKA has a spread of about 0.08 here; the mean of 30, 0.014
        x, y = rng(100 + seed).normal(size=(n, p)), rng(1000 + seed).normal(size=(n, p))
        biased.append(linear_cka(x, y))
        debiased.append(linear_cka_debiased(x, y))
    assert min(biased) > 0.5  # about 0.7 for every draw
    assert abs(np.mean(debiased)) < 0.05
    assert max(abs(v) for v in debiased) < 0.3


# --- standardisation ------------------------------------------------------------------------------


def test_standardize_features_z_scores_columns_and_zeroes_constant_ones():
    x = np.column_stack([rng(15).normal(3.0, 5.0, size=30), np.full(30, 0.1), rng(16).normal(size=30)])
    z = standardize_features(x)
    assert z.mean(axis=0) == pytest.approx([0.0, 0.0, 0.0], abs=1e-12)
    assert z.std(axis=0) == pytest.approx([1.0, 0.0, 1.0], abs=1e-12)
    assert np.all(z[:, 1] == 0.0)


def test_standardize_removes_an_outlier_dimension_that_dominates_plain_cka():
    x = rng(17).normal(size=(60, 8))
    y = x * np.array([1.0] * 7 + [100.0])  # one outlier dimension, otherwise the same features
    assert linear_cka(x, y) < 0.5
    assert linear_cka(x, y, standardize=True) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka_debiased(x, y, standardize=True) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_a_constant_column_with_a_huge_offset_changes_nothing(estimator):
    x = rng(22).normal(size=(7, 3))
    offset = np.full((7, 1), 1e15 + 0.2)  # centring it leaves a round-off of 0.125 in float64 at n = 7
    assert estimator(x, np.hstack([x, offset])) == pytest.approx(1.0, abs=1e-12)
    assert estimator(x, np.hstack([x, offset]), standardize=True) == pytest.approx(1.0, abs=1e-12)


# --- errors instead of NaN ------------------------------------------------------------------------


def test_errors_are_value_errors_and_harness_errors():
    assert issubclass(AnalysisError, ValueError) and issubclass(AnalysisError, HarnessError)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_undefined_cka_raises_instead_of_returning_nan(estimator):
    x = rng(18).normal(size=(10, 3))
    with pytest.raises(AnalysisError, match="different numbers of examples"):
        estimator(x, x[:9])
    with pytest.raises(AnalysisError, match="y is constant"):
        estimator(x, np.full((10, 4), 0.1))  # centring 0.1 leaves round-off, still constant
    with pytest.raises(AnalysisError, match="NaN or infinite"):
        estimator(x, np.where(x > 1.0, np.nan, x))
    with pytest.raises(AnalysisError, match=r"\[n, p\] matrix"):
        estimator(x[:, 0], x)


def test_unbiased_estimators_need_four_examples():
    x = rng(19).normal(size=(3, 2))
    assert math.isfinite(linear_cka(x, x))
    with pytest.raises(AnalysisError, match="n >= 4"):
        linear_cka_debiased(x, x)
    with pytest.raises(AnalysisError, match="n >= 4"):
        hsic_unbiased(x @ x.T, x @ x.T)
    with pytest.raises(AnalysisError, match="square"):
        hsic_biased(x, x)


def test_torch_tensors_are_accepted_and_computed_in_float64():
    torch = pytest.importorskip("torch")
    x = rng(20).normal(size=(16, 4))
    y = rng(21).normal(size=(16, 3))
    tx = torch.tensor(x, requires_grad=True)
    assert linear_cka(tx, torch.tensor(y)) == linear_cka(x, y)
    assert linear_cka_debiased(tx, torch.tensor(y)) == linear_cka_debiased(x, y)


# --- layerwise matrices ---------------------------------------------------------------------------


def make_reps(models: int = 3, layers: int = 2, n: int = 12, widths=(5, 20)) -> list[list[np.ndarray]]:
    base = [rng(30 + layer).normal(size=(n, widths[layer])) for layer in range(layers)]
    return [
        [base[layer] + 0.7 * t * rng(40 + 10 * t + layer).normal(size=base[layer].shape) for layer in range(layers)]
        for t in range(models)
    ]


@pytest.mark.parametrize("debiased", [False, True])
def test_layerwise_cka_is_symmetric_with_unit_diagonal_and_matches_pairwise_cka(debiased):
    reps = make_reps()
    result = layerwise_cka(reps, debiased=debiased)
    pairwise = linear_cka_debiased if debiased else linear_cka
    assert result.per_layer.shape == (2, 3, 3) and result.debiased is debiased
    for layer in range(2):
        m = result.per_layer[layer]
        assert np.array_equal(m, m.T)
        assert np.all(np.diag(m) == 1.0)
        for i, j in itertools.combinations(range(3), 2):
            assert m[i, j] == pytest.approx(pairwise(reps[i][layer], reps[j][layer]), abs=1e-12)
    assert result.mean == pytest.approx(result.per_layer.mean(axis=0))
    assert np.array_equal(result.minimum, np.minimum(result.per_layer[0], result.per_layer[1]))


def test_layerwise_cka_prepares_each_representation_once_and_each_pair_once(monkeypatch):
    calls = {"prepare": 0, "cross": 0, "pairs": set()}
    prepare, cross = cka._prepare, cka._cross

    def counting_prepare(*args, **kwargs):
        calls["prepare"] += 1
        return prepare(*args, **kwargs)

    def counting_cross(a, b, **kwargs):
        calls["cross"] += 1
        if a is not b:
            key = frozenset((id(a), id(b)))
            assert key not in calls["pairs"], "a pair computed twice"
            calls["pairs"].add(key)
        return cross(a, b, **kwargs)

    monkeypatch.setattr(cka, "_prepare", counting_prepare)
    monkeypatch.setattr(cka, "_cross", counting_cross)
    models, layers = 4, 2
    layerwise_cka(make_reps(models, layers))
    assert calls["prepare"] == models * layers
    pairs = models * (models - 1) // 2
    assert len(calls["pairs"]) == layers * pairs
    assert calls["cross"] == layers * (models + pairs)  # one self-HSIC per representation, one per pair


def test_layerwise_cka_errors_name_the_model_and_layer():
    reps = make_reps()
    reps[2][1] = np.ones_like(reps[2][1])
    with pytest.raises(AnalysisError, match=r"reps\[2\]\[1\] is constant"):
        layerwise_cka(reps)
    reps = make_reps()
    reps[1][1] = reps[1][1][:-1]
    with pytest.raises(AnalysisError, match=r"reps\[1\]\[1\] and reps\[0\]\[0\] have different numbers"):
        layerwise_cka(reps)
    with pytest.raises(AnalysisError, match=r"reps\[1\] has 1 layers but reps\[0\] has 2"):
        layerwise_cka([make_reps()[0], make_reps()[0][:1]])
    with pytest.raises(AnalysisError, match="at least one model"):
        layerwise_cka([])

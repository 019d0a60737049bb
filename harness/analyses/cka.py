"""Linear centred kernel alignment (CKA) between representations, and the HSIC estimators behind it.

CKA is a **similarity**, not a distance: 1 when two representations of the same n examples are
equal up to an orthogonal transform and an isotropic scaling, near 0 when they are unrelated.
The biased estimator lies in [0, 1] but is inflated at small n (two independent random
representations score well above 0); the debiased estimator removes that bias, lies in [-1, 1]
and is centred on 0 for independent representations, so it can be slightly negative.

Inputs are [n, p] feature matrices (n examples as rows, in the same order for both arguments,
p features; the widths may differ), as numpy arrays, torch tensors or nested lists; everything is
computed in float64 on the CPU. Nothing here returns NaN: an undefined value (a constant
representation, too few rows, non-finite input) raises ``AnalysisError`` (a ``ValueError``).

References:

- Kornblith, Norouzi, Lee & Hinton 2019, "Similarity of Neural Network Representations
  Revisited", ICML: linear CKA and its feature-space form.
- Gretton, Bousquet, Smola & Schölkopf 2005, "Measuring Statistical Dependence with
  Hilbert-Schmidt Norms", ALT: the biased HSIC estimator.
- Song, Smola, Gretton, Bedo & Borgwardt 2012, "Feature Selection via Dependence
  Maximization", JMLR 13, eq. (5) "HSIC_1": the unbiased HSIC estimator.
- Nguyen, Raghu & Kornblith 2021, "Do Wide and Deep Networks Learn the Same Things?", ICLR:
  debiased CKA (CKA with HSIC_1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from harness.errors import AnalysisError

# Centring leaves round-off of about 1e-16 of the values' magnitude in a constant column;
# anything below this share of the magnitude is treated as exactly constant.
_CONSTANT_RTOL = 1e-12


def _as_matrix(x: ArrayLike, name: str) -> np.ndarray:
    """x as a finite float64 [n, p] numpy array (a torch tensor is detached and moved to the CPU)."""
    if hasattr(x, "detach"):  # a torch tensor: off the graph and off the device, without importing torch
        x = x.detach().cpu().double().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise AnalysisError(f"{name} must be a non-empty [n, p] matrix (n examples as rows); got shape {a.shape}")
    if not np.isfinite(a).all():
        raise AnalysisError(f"{name} has NaN or infinite values")
    return a


def _as_gram(k: ArrayLike, name: str) -> np.ndarray:
    a = _as_matrix(k, name)
    if a.shape[0] != a.shape[1]:
        raise AnalysisError(f"{name} must be a square [n, n] Gram matrix; got shape {a.shape}")
    return a


def _check_rows(n_x: int, n_y: int, what: str) -> None:
    if n_x != n_y:
        raise AnalysisError(f"{what}: {n_x} vs {n_y} rows; both must hold the same n examples in the same order")


def _check_unbiased_n(n: int) -> None:
    if n < 4:
        raise AnalysisError(f"the unbiased HSIC estimator needs n >= 4 examples; got n={n}")


def _centre_columns(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column-centred x [n, p] with constant columns set to exactly 0, and the [p] mask of those columns.

    Judged column by column, so a column with a huge constant offset neither leaves its
    round-off behind nor makes the small variation of the other columns look like round-off.
    """
    centred = x - x.mean(axis=0)  # [n, p]
    constant = np.linalg.norm(centred, axis=0) <= _CONSTANT_RTOL * np.linalg.norm(x, axis=0)  # [p]
    centred[:, constant] = 0.0
    return centred, constant


def _zscore(centred: np.ndarray, constant: np.ndarray) -> np.ndarray:
    std = np.sqrt((centred**2).mean(axis=0))  # [p], ddof=0
    return centred / np.where(constant, 1.0, std)


def standardize_features(x: ArrayLike) -> np.ndarray:
    """Z-score every feature (column) of x [n, p] over its n examples: (x - mean) / std, ddof=0.

    Offered before CKA because a few outlier dimensions with large variance can dominate
    linear CKA on transformer representations. A constant column (zero variance, up to
    round-off) carries no information and becomes 0 instead of a division by zero. Returns a
    new float64 [n, p] array.
    """
    return _zscore(*_centre_columns(_as_matrix(x, "x")))


@dataclass(frozen=True)
class _Prepared:
    """One representation, centred once and reused for every pair it takes part in."""

    n: int
    features: np.ndarray | None  # [n, p] centred features (feature-space form), or None
    gram: np.ndarray | None  # [n, n] Gram matrix of the centred features (Gram form), or None
    sq_norms: np.ndarray  # [n] squared norms of the centred rows = diagonal of the Gram matrix


def _use_gram(n: int, widths: Sequence[int]) -> bool:
    """Gram form when some width exceeds n: n x n products are then cheaper than p x p ones."""
    return n < max(widths)


def _prepare(x: np.ndarray, *, gram: bool, standardize: bool, name: str) -> _Prepared:
    centred, constant = _centre_columns(x)  # [n, p], [p]
    if constant.all():
        raise AnalysisError(f"{name} is constant over its {x.shape[0]} examples (zero variance): CKA is undefined")
    if standardize:
        centred = _zscore(centred, constant)
    sq_norms = np.einsum("ij,ij->i", centred, centred)
    if gram:
        return _Prepared(x.shape[0], None, centred @ centred.T, sq_norms)
    return _Prepared(x.shape[0], centred, None, sq_norms)


def _cross(a: _Prepared, b: _Prepared, *, debiased: bool) -> float:
    """HSIC of the linear kernels of two prepared representations (biased HSIC_0 or unbiased HSIC_1).

    With centred features the Gram matrices K, L have zero row sums, so the row sums of
    K~ (K with its diagonal set to 0) are -diag(K) and Song et al.'s HSIC_1 needs only <K, L>,
    diag(K) and diag(L). <K, L> = ||X^T Y||_F^2 is taken in feature space or from the Grams.
    HSIC_1 is unchanged by centring the features first (it is translation invariant; tested).
    """
    if a.gram is not None and b.gram is not None:
        inner = float(np.vdot(a.gram, b.gram))  # <K, L>_F, O(n^2)
    else:
        assert a.features is not None and b.features is not None, "both representations in the same form"
        inner = float(np.linalg.norm(a.features.T @ b.features) ** 2)  # ||X^T Y||_F^2, O(n p_x p_y)
    n = a.n
    if not debiased:
        return inner / (n - 1) ** 2
    diag_dot = float(a.sq_norms @ b.sq_norms)  # sum_i K_ii L_ii = (K~ 1) . (L~ 1)
    sums = float(a.sq_norms.sum() * b.sq_norms.sum())  # (1^T K~ 1)(1^T L~ 1)
    trace = inner - diag_dot  # tr(K~ L~)
    return (trace + sums / ((n - 1) * (n - 2)) - 2.0 * diag_dot / (n - 2)) / (n * (n - 3))


def _self_hsic(a: _Prepared, *, debiased: bool, name: str) -> float:
    value = _cross(a, a, debiased=debiased)
    if value <= 0.0:
        # HSIC_1(K, K) estimates a squared norm and is positive except for tiny, degenerate n
        raise AnalysisError(
            f"the unbiased HSIC of {name} with itself is {value:.3g} <= 0 (n={a.n}): debiased CKA is undefined; "
            "use more probe examples or the biased estimator"
        )
    return value


def _cka_pair(x: ArrayLike, y: ArrayLike, *, debiased: bool, standardize: bool) -> float:
    a, b = _as_matrix(x, "x"), _as_matrix(y, "y")
    _check_rows(a.shape[0], b.shape[0], "x and y have different numbers of examples")
    if debiased:
        _check_unbiased_n(a.shape[0])
    gram = _use_gram(a.shape[0], (a.shape[1], b.shape[1]))
    pa = _prepare(a, gram=gram, standardize=standardize, name="x")
    pb = _prepare(b, gram=gram, standardize=standardize, name="y")
    hsic_xx = _self_hsic(pa, debiased=debiased, name="x")
    hsic_yy = _self_hsic(pb, debiased=debiased, name="y")
    return _cross(pa, pb, debiased=debiased) / math.sqrt(hsic_xx * hsic_yy)


def linear_cka(x: ArrayLike, y: ArrayLike, *, standardize: bool = False) -> float:
    """Linear CKA with the biased HSIC estimator (Kornblith et al. 2019), a similarity in [0, 1].

    x [n, p_x] and y [n, p_y] hold the same n examples in the same order. With X, Y the
    column-centred features, CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), computed in
    feature space (cost O(n p_x p_y): efficient when n >> p) or, when a width exceeds n, through
    the n x n Gram matrices as HSIC_0(K, L) / sqrt(HSIC_0(K, K) HSIC_0(L, L)); the two are equal.
    1 means equal up to rotation and isotropic scaling. Invariant to orthogonal transforms and
    isotropic scaling of either argument, not to other invertible linear maps. Biased upwards at
    small n; see ``linear_cka_debiased``. ``standardize`` z-scores each feature first
    (``standardize_features``). Raises ``AnalysisError`` (a ``ValueError``) for different n,
    non-finite values or a constant representation.
    """
    return _cka_pair(x, y, debiased=False, standardize=standardize)


def linear_cka_debiased(x: ArrayLike, y: ArrayLike, *, standardize: bool = False) -> float:
    """Debiased linear CKA (Nguyen, Raghu & Kornblith 2021), a similarity in [-1, 1], near 0 if unrelated.

    CKA with the unbiased HSIC_1 of Song et al. 2012 (see ``hsic_unbiased``) in place of the
    biased estimator: HSIC_1(K, L) / sqrt(HSIC_1(K, K) HSIC_1(L, L)) for the linear kernels
    K = X X^T, L = Y Y^T of x [n, p_x] and y [n, p_y] (same n examples, same order). Unlike
    ``linear_cka`` it is not inflated for independent representations at small n, and can be
    slightly negative. CKA(x, x) = 1. Same invariances as ``linear_cka``. Needs n >= 4.
    Raises ``AnalysisError`` (a ``ValueError``) for n < 4, different n, non-finite values, a
    constant representation, or a degenerate one whose HSIC_1 with itself is not positive.
    """
    return _cka_pair(x, y, debiased=True, standardize=standardize)


def hsic_biased(k: ArrayLike, l: ArrayLike) -> float:  # noqa: E741 -- the papers' name for the second Gram matrix
    """Biased HSIC estimator HSIC_0 = tr(K H L H) / (n - 1)^2 (Gretton et al. 2005).

    k, l: [n, n] symmetric Gram (kernel) matrices of the same n examples; H = I - 11^T / n is
    the centring matrix. A dependence measure (larger = more dependent), not a similarity in
    [0, 1]; the (n - 1)^2 normaliser follows Gretton et al. and cancels in CKA. Raises
    ``AnalysisError`` for non-square, mismatched or non-finite matrices.
    """
    kk, ll = _as_gram(k, "K"), _as_gram(l, "L")
    _check_rows(kk.shape[0], ll.shape[0], "K and L have different sizes")
    n = kk.shape[0]
    kc = kk - kk.mean(axis=0, keepdims=True) - kk.mean(axis=1, keepdims=True) + kk.mean()  # H K H
    lc = ll - ll.mean(axis=0, keepdims=True) - ll.mean(axis=1, keepdims=True) + ll.mean()  # H L H
    return float(np.vdot(kc, lc)) / (n - 1) ** 2  # tr(HKH HLH) = tr(KHLH), H idempotent


def hsic_unbiased(k: ArrayLike, l: ArrayLike) -> float:  # noqa: E741 -- the papers' name for the second Gram matrix
    """Unbiased HSIC estimator HSIC_1 (Song et al. 2012, JMLR 13, eq. 5).

    With K~, L~ the [n, n] Gram matrices k, l with their diagonals set to 0 and 1 the all-ones
    vector:

        HSIC_1 = [tr(K~ L~) + (1^T K~ 1)(1^T L~ 1) / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n (n-3))

    an unbiased estimate of HSIC: 0 in expectation for independent samples, so it can be
    negative. A dependence measure, not a similarity in [0, 1]. k and l must be symmetric;
    needs n >= 4. Raises ``AnalysisError`` for n < 4, non-square, mismatched or non-finite input.
    """
    kk, ll = _as_gram(k, "K"), _as_gram(l, "L")
    _check_rows(kk.shape[0], ll.shape[0], "K and L have different sizes")
    n = kk.shape[0]
    _check_unbiased_n(n)
    kt, lt = kk.copy(), ll.copy()
    np.fill_diagonal(kt, 0.0)
    np.fill_diagonal(lt, 0.0)
    ones_k, ones_l = kt.sum(axis=1), lt.sum(axis=1)  # K~ 1, L~ 1 (K~ symmetric: 1^T K~ L~ 1 = (K~ 1).(L~ 1))
    trace = float(np.vdot(kt, lt))  # tr(K~ L~) = sum_ij K~_ij L~_ij for symmetric matrices
    sums = float(ones_k.sum() * ones_l.sum())
    return (trace + sums / ((n - 1) * (n - 2)) - 2.0 * float(ones_k @ ones_l) / (n - 2)) / (n * (n - 3))


@dataclass(frozen=True)
class LayerwiseCKA:
    """CKA between T models at each of L layers, on one shared probe set.

    ``per_layer[l, i, j]`` is the CKA (a similarity, see ``linear_cka``) between model i's and
    model j's representations at layer l: shape [L, T, T], symmetric in (i, j), diagonal 1.
    ``mean`` and ``minimum`` summarise over layers ([T, T] each): Sehanobish et al. (2022) ask
    for similar representations "across all hidden layers", which the minimum reads strictly.
    """

    per_layer: np.ndarray  # [L, T, T]
    debiased: bool  # True: debiased CKA (HSIC_1), False: biased linear CKA
    standardized: bool  # True: features were z-scored first

    @property
    def mean(self) -> np.ndarray:
        """[T, T] mean over layers."""
        return self.per_layer.mean(axis=0)

    @property
    def minimum(self) -> np.ndarray:
        """[T, T] minimum over layers: the least similar layer for each pair."""
        return self.per_layer.min(axis=0)


def _check_layout(reps: Sequence[Sequence[ArrayLike]]) -> int:
    if len(reps) == 0:
        raise AnalysisError("layerwise CKA needs the representations of at least one model; got none")
    layers = len(reps[0])
    if layers == 0:
        raise AnalysisError("reps[0] has no layers; pass reps[t][l] as an [n, p_l] matrix per model t and layer l")
    for t, model in enumerate(reps):
        if len(model) != layers:
            raise AnalysisError(f"reps[{t}] has {len(model)} layers but reps[0] has {layers}; models must match")
    return layers


def layerwise_cka(
    reps: Sequence[Sequence[ArrayLike]], *, debiased: bool = False, standardize: bool = False
) -> LayerwiseCKA:
    """CKA matrices [L, T, T] between T models' representations at each of their L layers.

    ``reps[t][l]`` is model t's representation at layer l, an [n, p_l] matrix whose n rows are
    the same probe examples in the same order for every model and layer (e.g. mean-pooled
    hidden states of the STL models of T tasks). ``debiased`` selects ``linear_cka_debiased``
    instead of ``linear_cka``; ``standardize`` z-scores features first. Each representation
    is centred (and its Gram matrix formed, when a width exceeds n) once, and each of the
    T(T-1)/2 pairs per layer is computed once; memory peaks at one layer of T models (T n^2
    floats in Gram form). Raises ``AnalysisError`` for an empty or ragged ``reps``, a different
    n anywhere, or any undefined CKA (see ``linear_cka`` and ``linear_cka_debiased``), naming
    the model and layer.
    """
    layers = _check_layout(reps)
    models = len(reps)
    out = np.empty((layers, models, models), dtype=np.float64)
    n = -1
    for layer in range(layers):
        mats = [_as_matrix(reps[t][layer], f"reps[{t}][{layer}]") for t in range(models)]
        for t, m in enumerate(mats):
            n = m.shape[0] if n < 0 else n
            _check_rows(m.shape[0], n, f"reps[{t}][{layer}] and reps[0][0] have different numbers of examples")
        if debiased:
            _check_unbiased_n(n)
        gram = _use_gram(n, [m.shape[1] for m in mats])
        names = [f"reps[{t}][{layer}]" for t in range(models)]
        prepared = [_prepare(m, gram=gram, standardize=standardize, name=nm) for m, nm in zip(mats, names, strict=True)]
        norms = [math.sqrt(_self_hsic(p, debiased=debiased, name=nm)) for p, nm in zip(prepared, names, strict=True)]
        for i in range(models):
            out[layer, i, i] = 1.0
            for j in range(i + 1, models):
                value = _cross(prepared[i], prepared[j], debiased=debiased) / (norms[i] * norms[j])
                out[layer, i, j] = out[layer, j, i] = value
    return LayerwiseCKA(out, debiased, standardize)

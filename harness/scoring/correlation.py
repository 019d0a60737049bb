"""Rank correlation of a predictor with the measured gaps, with a task-permutation null and a bootstrap CI.

Statistic: Spearman rho (``scipy.stats.spearmanr``). Null: the task labels of P are permuted,
rows and columns jointly (``P[pi][:, pi]``), as in a Mantel test (Mantel 1967): the T(T-1)
entries of a task matrix are not exchangeable (entries sharing a task are dependent), so
permuting entries one by one would give too narrow a null and too small p-values. With T!
at most ``n_permutations`` every permutation is enumerated (an exact test).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
from scipy import stats

from harness.errors import AnalysisError
from harness.scoring.score import Score, check_count, check_gaps, check_level, check_predictor, measured_pairs

Alternative = Literal["greater", "two-sided", "less"]


def spearman(x: np.ndarray, y: np.ndarray, what: str) -> float:
    """Spearman rho of two 1-D arrays; AnalysisError instead of NaN when it is undefined."""
    if x.size < 3:
        raise AnalysisError(f"{what}: {x.size} points; a rank correlation needs at least 3")
    for name, v in (("predictor values", x), ("measured gaps", y)):
        if np.ptp(v) == 0:
            raise AnalysisError(f"{what}: the {name} are all equal; a rank correlation is undefined")
    return float(stats.spearmanr(x, y).statistic)


def task_permutation_p(
    statistic_of_p: Callable[[np.ndarray], float],
    P: np.ndarray,
    *,
    n_permutations: int,
    alternative: Alternative,
    rng: np.random.Generator,
) -> float:
    """p-value of ``statistic_of_p(P)`` under permutations of P's task labels (rows and columns jointly)."""

    def permuted(order: np.ndarray) -> float:
        order = np.asarray(order, dtype=np.intp)
        return statistic_of_p(P[np.ix_(order, order)])

    result = stats.permutation_test(
        (np.arange(P.shape[0]),),
        permuted,
        permutation_type="pairings",
        vectorized=False,
        n_resamples=n_permutations,
        alternative=alternative,
        rng=rng,
    )
    return float(result.pvalue)


def bootstrap_ci(
    statistic_of_rows: Callable[[np.ndarray], float],
    n_rows: int,
    *,
    n_bootstrap: int,
    confidence: float,
    rng: np.random.Generator,
    unit: str,
) -> tuple[float, float]:
    """Percentile bootstrap CI of a statistic of resampled row indices (rows = the resampling unit)."""
    if n_rows < 2:
        raise AnalysisError(f"a bootstrap CI needs at least 2 {unit}s; got {n_rows} (pass n_bootstrap=0 to skip it)")

    def statistic(rows: np.ndarray) -> float:
        try:
            return statistic_of_rows(np.asarray(rows, dtype=np.intp))
        except AnalysisError:  # a resample with all-equal values: flagged below as a whole
            return math.nan

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap(
            (np.arange(n_rows),),
            statistic,
            n_resamples=n_bootstrap,
            vectorized=False,
            confidence_level=confidence,
            method="percentile",
            rng=rng,
        )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        raise AnalysisError(
            f"bootstrap CI undefined: some resamples of the {n_rows} {unit}s have all-equal values; "
            "add data, or pass n_bootstrap=0 to skip the CI"
        )
    return low, high


def rank_correlation(
    P: np.ndarray,
    G: np.ndarray,
    *,
    n_permutations: int = 1000,
    n_bootstrap: int = 1000,
    seed: int,
    tasks: Sequence[str] | None = None,
    alternative: Alternative = "greater",
    confidence: float = 0.95,
    replicate_unit: str = "seed",
) -> Score:
    """Spearman rho between a predictor's off-diagonal entries and the seed-mean pair gaps.

    Points: the ordered pairs (i, j), i != j, measured on every seed: ``P[i, j]`` against
    ``mean_s G[s, i, j]`` (gap of i when trained with j). A symmetric predictor therefore
    enters each value twice, once against gap(i | j) and once against gap(j | i): the score
    asks whether P predicts each task's own gap, not a symmetrised pair gap.

    p-value: Mantel-style, over permutations of P's task labels (see the module docstring);
    one-sided ``"greater"`` by default (higher P, higher gap), the alternative a predictor claims.
    CI: percentile bootstrap over the first axis of G (``replicate_unit``, seeds by default):
    the seeds are resampled with replacement and the seed-mean recomputed; the examples inside
    a seed are not resampled. A caller with per-example replicates may pass them on that axis
    and name the unit. With few seeds the interval is coarse and tends to be too narrow.
    ``n_permutations=0`` / ``n_bootstrap=0`` skip the p-value / CI (None).
    """
    check_count("n_permutations", n_permutations)
    check_count("n_bootstrap", n_bootstrap)
    check_level("confidence", confidence)
    P = check_predictor(P, tasks)
    G = check_gaps(G, P.shape[0], tasks)
    mask = measured_pairs(G)
    what = "rank correlation of predictor and pair gaps"
    y = G[:, mask].mean(axis=0)
    value = spearman(P[mask], y, what)
    rng = np.random.default_rng(seed)
    perm_rng, boot_rng = rng.spawn(2)

    p_value = None
    if n_permutations:
        p_value = task_permutation_p(
            lambda Pp: spearman(Pp[mask], y, what),
            P,
            n_permutations=n_permutations,
            alternative=alternative,
            rng=perm_rng,
        )
    ci_low = ci_high = None
    if n_bootstrap:
        ci_low, ci_high = bootstrap_ci(
            lambda rows: spearman(P[mask], G[rows][:, mask].mean(axis=0), what),
            G.shape[0],
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            rng=boot_rng,
            unit=replicate_unit,
        )
    return Score(
        value=value,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        n=int(mask.sum()),
        method="Spearman rho: P[i, j] vs seed-mean gap of i trained with j, ordered pairs i != j",
        null=f"task-label permutation of P, rows and columns jointly (Mantel), {alternative}" if n_permutations else "",
        interval=f"percentile bootstrap over {replicate_unit}s of G" if n_bootstrap else "",
        confidence=confidence,
    )

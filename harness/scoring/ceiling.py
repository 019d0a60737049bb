"""Noise ceiling: how reliably the seeds measure the pair gaps, and a score's share of it."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from harness.errors import AnalysisError
from harness.scoring.correlation import spearman
from harness.scoring.score import Score, check_count, check_gaps, measured_pairs


def noise_ceiling(G: np.ndarray, *, n_splits: int = 100, seed: int, tasks: Sequence[str] | None = None) -> Score:
    """Split-half reliability of the measured pair gaps across seeds.

    Each split puts a random half of the seeds (floor(S/2); the rest in the other half) on
    one side; ``value`` is the Spearman rho between the two halves' seed-mean gap matrices
    (ordered off-diagonal pairs measured on every seed), averaged over ``n_splits`` random
    splits. ``corrected`` is the Spearman-Brown step-up 2r / (1 + r) to the full set of seeds
    (the reliability of the S-seed mean the predictors are scored against); None when r <= -1.
    No p-value or CI (the splits share seeds; their spread is not a sampling distribution).
    Needs at least 2 seeds.
    """
    check_count("n_splits", n_splits, minimum=1)
    G = np.asarray(G, dtype=np.float64)
    if G.ndim == 3 and G.shape[0] < 2:
        raise AnalysisError(
            f"noise ceiling needs at least 2 seeds of pair gaps to split in halves; got {G.shape[0]}: "
            "train more seeds, or report the scores without a ceiling"
        )
    G = check_gaps(G, G.shape[1] if G.ndim == 3 else 0, tasks)
    mask = measured_pairs(G)
    S = G.shape[0]
    rng = np.random.default_rng(seed)
    rhos = []
    for _ in range(n_splits):
        order = rng.permutation(S)
        first, second = order[: S // 2], order[S // 2 :]
        a = G[first][:, mask].mean(axis=0)
        b = G[second][:, mask].mean(axis=0)
        rhos.append(spearman(a, b, "noise ceiling (split-half rank correlation of pair gaps)"))
    r = float(np.mean(rhos))
    return Score(
        value=r,
        ci_low=None,
        ci_high=None,
        p_value=None,
        n=int(mask.sum()),
        method=f"split-half Spearman rho of seed-mean pair gaps, mean over {n_splits} random splits of {S} seeds",
        corrected=2 * r / (1 + r) if r > -1 else None,
    )


def fraction_of_ceiling(score: Score, ceiling: Score) -> float:
    """``score.value / sqrt(ceiling.corrected)``: the score as a share of the best a predictor can reach.

    A predictor that equals the true gaps correlates with the noisy S-seed mean at most at
    sqrt(reliability) (Spearman's correction for attenuation), the reliability being the
    Spearman-Brown ``corrected`` split-half value. Exact for Pearson, approximate for ranks;
    can exceed 1 by noise. Raises when the ceiling is not positive (the gaps are not reliable).
    """
    if ceiling.corrected is None or not ceiling.corrected > 0:
        raise AnalysisError(
            f"noise ceiling reliability is {_shown(ceiling.corrected)}; a share of it is undefined "
            "(the measured gaps do not agree across seeds: train more seeds)"
        )
    return score.value / math.sqrt(ceiling.corrected)


def _shown(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3g}"

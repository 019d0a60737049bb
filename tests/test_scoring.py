"""Scores of predictors against measured gaps: exact values on constructed matrices, nulls, conventions."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from scipy import stats

from harness.errors import AnalysisError, ConfigError
from harness.scoring import (
    DetectionScore,
    Score,
    cost_share,
    fraction_of_ceiling,
    group_affinity_vs_gap,
    grouper_summary,
    negative_transfer_detection,
    noise_ceiling,
    partition_mean_gap,
    rank_correlation,
    regret,
)


def structure(T: int, rng: np.random.Generator) -> np.ndarray:
    """A [T, T] matrix of true pair gaps, distinct off the diagonal, NaN on it."""
    M = rng.normal(size=(T, T))
    np.fill_diagonal(M, np.nan)
    return M


def seeds(M: np.ndarray, S: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """[S, T, T] measured gaps: the structure plus independent noise per seed."""
    return M[None] + noise * rng.normal(size=(S, *M.shape))


def predictor(M: np.ndarray) -> np.ndarray:
    return np.nan_to_num(M, nan=0.0)


# --- rank_correlation ---------------------------------------------------------------------------


def test_rho_is_one_for_a_monotone_transform_of_the_gaps_and_minus_one_reversed():
    rng = np.random.default_rng(0)
    M = structure(5, rng)
    G = seeds(M, 3, 0.0, rng)
    up = rank_correlation(np.exp(predictor(M)), G, n_permutations=0, n_bootstrap=0, seed=0)
    down = rank_correlation(-(predictor(M) ** 3), G, n_permutations=0, n_bootstrap=0, seed=0)
    assert up.value == pytest.approx(1.0)
    assert down.value == pytest.approx(-1.0)
    assert up.n == 5 * 4  # ordered pairs
    assert up.p_value is None and up.ci_low is None  # nothing asked for, nothing reported


def test_clear_structure_gives_a_small_p_value_and_random_predictors_large_ones_on_average():
    rng = np.random.default_rng(1)
    M = structure(6, rng)
    G = seeds(M, 4, 0.2, rng)
    clear = rank_correlation(
        predictor(M) + 0.1 * rng.normal(size=M.shape), G, n_permutations=200, n_bootstrap=0, seed=0
    )
    assert clear.value > 0.8
    assert clear.p_value is not None and clear.p_value < 0.02
    random_p = [
        rank_correlation(rng.normal(size=M.shape), G, n_permutations=99, n_bootstrap=0, seed=k).p_value
        for k in range(20)
    ]
    assert np.mean(random_p) >= 0.2


def test_the_null_permutes_task_labels_not_entries():
    # 3 tasks, 6 distinct entries, P equal to the gaps: only the identity of the 3! task
    # permutations reaches rho = 1, so the exact p-value is 1/6. Permuting the 6 entries
    # independently (the wrong null) would give 1/720.
    M = np.array([[np.nan, 1.0, 2.0], [3.0, np.nan, 4.0], [5.0, 6.0, np.nan]])
    G = seeds(M, 2, 0.0, np.random.default_rng(0))
    score = rank_correlation(predictor(M), G, n_permutations=1000, n_bootstrap=0, seed=0)
    assert score.value == pytest.approx(1.0)
    assert score.p_value == pytest.approx(1 / 6)
    off = ~np.isnan(M)
    entrywise = stats.permutation_test(
        (M[off],),
        lambda x: stats.spearmanr(x, M[off]).statistic,
        permutation_type="pairings",
        n_resamples=1000,
        alternative="greater",
    )
    assert entrywise.pvalue == pytest.approx(1 / 720)


def test_bootstrap_ci_contains_the_estimate_and_everything_is_reproducible_from_the_seed():
    rng = np.random.default_rng(2)
    M = structure(6, rng)
    G = seeds(M, 5, 0.8, rng)
    P = predictor(M) + 0.5 * rng.normal(size=M.shape)
    a = rank_correlation(P, G, n_permutations=99, n_bootstrap=200, seed=7)
    b = rank_correlation(P, G, n_permutations=99, n_bootstrap=200, seed=7)
    assert a == b
    assert a.ci_low is not None and a.ci_high is not None
    assert a.ci_low <= a.value <= a.ci_high
    assert "seeds" in a.interval and "permutation" in a.null


def test_unmeasured_pairs_are_dropped_and_partially_measured_ones_refused():
    rng = np.random.default_rng(3)
    M = structure(4, rng)
    G = seeds(M, 3, 0.1, rng)
    G[:, 0, 1] = np.nan
    assert rank_correlation(predictor(M), G, n_permutations=0, n_bootstrap=0, seed=0).n == 4 * 3 - 1
    G[0, 2, 3] = np.nan
    with pytest.raises(AnalysisError, match=r"\('c', 'd'\).*some seeds"):
        rank_correlation(predictor(M), G, n_permutations=0, n_bootstrap=0, seed=0, tasks="abcd")


def test_bad_arguments_and_undefined_inputs_raise_harness_errors():
    rng = np.random.default_rng(4)
    M = structure(4, rng)
    G = seeds(M, 3, 0.1, rng)
    with pytest.raises(ConfigError, match="n_permutations"):
        rank_correlation(predictor(M), G, n_permutations=-1, n_bootstrap=0, seed=0)
    with pytest.raises(AnalysisError, match="all equal"):
        rank_correlation(np.ones((4, 4)), G, n_permutations=0, n_bootstrap=0, seed=0)
    with pytest.raises(AnalysisError, match="shape"):
        rank_correlation(predictor(M), G[:, :3, :3], n_permutations=0, n_bootstrap=0, seed=0)
    with pytest.raises(AnalysisError, match="n_bootstrap=0"):
        rank_correlation(predictor(M), G[:1], n_permutations=0, n_bootstrap=10, seed=0)


# --- noise ceiling ------------------------------------------------------------------------------


def test_noise_ceiling_is_near_one_for_low_noise_and_near_zero_for_pure_noise():
    rng = np.random.default_rng(5)
    M = structure(6, rng)
    low = noise_ceiling(seeds(M, 6, 0.05, rng), n_splits=20, seed=0)
    assert low.value > 0.95
    assert low.corrected is not None and low.value <= low.corrected <= 1.0
    assert low.corrected == pytest.approx(2 * low.value / (1 + low.value))
    noise = [noise_ceiling(seeds(M * 0, 6, 1.0, rng), n_splits=20, seed=k).value for k in range(10)]
    assert abs(np.mean(noise)) < 0.1


def test_noise_ceiling_needs_two_seeds():
    G = seeds(structure(4, np.random.default_rng(0)), 1, 0.1, np.random.default_rng(1))
    with pytest.raises(AnalysisError, match="at least 2 seeds"):
        noise_ceiling(G, seed=0)


def test_a_predictor_equal_to_the_true_gaps_reaches_about_the_whole_ceiling():
    rng = np.random.default_rng(6)
    shares = []
    for k in range(5):
        M = structure(8, rng)
        G = seeds(M, 6, 1.5, rng)
        score = rank_correlation(predictor(M), G, n_permutations=0, n_bootstrap=0, seed=k)
        shares.append(fraction_of_ceiling(score, noise_ceiling(G, n_splits=50, seed=k)))
    assert np.mean(shares) == pytest.approx(1.0, abs=0.15)


def test_fraction_of_an_unreliable_ceiling_is_refused():
    ceiling = Score(value=-0.1, ci_low=None, ci_high=None, p_value=None, n=12, method="", corrected=-0.2)
    score = Score(value=0.3, ci_low=None, ci_high=None, p_value=None, n=12, method="")
    with pytest.raises(AnalysisError, match="train more seeds"):
        fraction_of_ceiling(score, ceiling)


# --- group affinity vs gap ----------------------------------------------------------------------


def test_group_affinity_tracks_gaps_built_from_it():
    rng = np.random.default_rng(7)
    T = 6
    P = predictor(structure(T, rng))
    groups = [*itertools.combinations(range(T), 2), *itertools.combinations(range(T), 3)][::2] + [(4,)]
    gaps = []
    for members in groups:
        affinity = np.array([np.mean([P[i, j] for j in members if j != i] or [0.0]) for i in members])
        gaps.append(affinity[None] + 0.05 * rng.normal(size=(3, len(members))))
    score = group_affinity_vs_gap(P, groups, gaps, n_permutations=200, n_bootstrap=200, seed=0)
    assert score.n == sum(len(g) for g in groups if len(g) > 1)  # the singleton has no group-mates
    assert score.value > 0.9
    assert score.p_value is not None and score.p_value < 0.02
    assert score.ci_low is not None and score.ci_high is not None
    assert score.ci_low <= score.value <= score.ci_high
    with pytest.raises(AnalysisError, match="repeats a task"):
        group_affinity_vs_gap(P, [(0, 0)], [np.zeros((2, 2))], seed=0)
    with pytest.raises(AnalysisError, match=r"shape \[seeds, 2\]"):
        group_affinity_vs_gap(P, [(0, 1)], [np.zeros((2, 3))], seed=0)


# --- negative transfer --------------------------------------------------------------------------


def negative_pairs_gaps(rng: np.random.Generator) -> tuple[np.ndarray, set[tuple[int, int]]]:
    """4 tasks, 5 seeds: pairs (0, 1) and (2, 3) clearly negative, the rest clearly positive."""
    negatives = {(0, 1), (2, 3)}
    M = np.full((4, 4), 0.5)
    for i, j in negatives:
        M[i, j] = -1.0
    np.fill_diagonal(M, np.nan)
    return seeds(M, 5, 0.1, rng), negatives


def test_a_perfect_predictor_detects_every_significant_negative_and_nothing_else():
    G, negatives = negative_pairs_gaps(np.random.default_rng(8))
    P = np.zeros((4, 4))
    for i, j in negatives:
        P[i, j] = -1.0
    d = negative_transfer_detection(P, G)
    assert set(d.significant) == negatives
    assert set(d.flagged) == negatives  # default threshold: median of P (0), flag P < 0
    assert (d.precision, d.recall, d.f1) == (1.0, 1.0, 1.0)
    assert (d.tp, d.fp, d.fn, d.tn) == (2, 0, 0, 10)
    assert d.tp + d.fp + d.fn + d.tn == d.n == 12


def test_a_reversed_predictor_scores_zero_and_counts_add_up():
    G, negatives = negative_pairs_gaps(np.random.default_rng(9))
    P = np.ones((4, 4))
    for i, j in negatives:
        P[i, j] = 2.0  # the negative pairs look most compatible; the rest are flagged
    d = negative_transfer_detection(P, G, threshold=1.5)
    assert (d.precision, d.recall, d.f1) == (0.0, 0.0, 0.0)
    assert (d.tp, d.fp, d.fn, d.tn) == (0, 10, 2, 0)


def test_undefined_precision_and_recall_are_none_not_nan():
    rng = np.random.default_rng(10)
    G, _ = negative_pairs_gaps(rng)
    nothing_flagged = negative_transfer_detection(rng.normal(size=(4, 4)), G, threshold=-math.inf)
    assert nothing_flagged.precision is None and nothing_flagged.f1 is None
    assert nothing_flagged.recall == 0.0
    no_negatives = negative_transfer_detection(rng.normal(size=(4, 4)), np.abs(G))
    assert no_negatives.recall is None and no_negatives.f1 is None
    assert no_negatives.precision == 0.0 and no_negatives.tp + no_negatives.fn == 0


def test_significance_is_the_t_interval_below_zero():
    # Mean -0.2 over 3 seeds with sd 0.3: the 95% t interval crosses 0, the 50% one does not.
    G = np.full((3, 2, 2), np.nan)
    G[:, 0, 1] = [-0.5, -0.2, 0.1]
    G[:, 1, 0] = [-0.3, -0.3, -0.3]  # no spread: a zero-width interval below 0
    P = np.array([[0.0, -1.0], [1.0, 0.0]])
    assert set(negative_transfer_detection(P, G).significant) == {(1, 0)}
    assert set(negative_transfer_detection(P, G, alpha=0.5).significant) == {(0, 1), (1, 0)}
    with pytest.raises(AnalysisError, match="at least 2 seeds"):
        negative_transfer_detection(P, G[:1])
    with pytest.raises(ConfigError, match="alpha"):
        negative_transfer_detection(P, G, alpha=1.5)


# --- regret and cost ----------------------------------------------------------------------------


def test_regret_is_zero_for_the_best_partition_and_positive_otherwise():
    together = (("a", "b", "c"),)
    pair = (("a", "b"), ("c",))
    alone = (("a",), ("b",), ("c",))
    gaps = {
        together: partition_mean_gap({"a": 0.02, "b": -0.04, "c": -0.01}),
        pair: partition_mean_gap({"a": 0.03, "b": 0.01, "c": 0.0}),
        alone: partition_mean_gap({"a": 0.0, "b": 0.0, "c": 0.0}),
    }
    best = max(gaps.values())
    assert regret(gaps[pair], best) == 0.0
    assert regret(gaps[together], best) > regret(gaps[alone], best) > 0
    summary = grouper_summary((("c",), ("b", "a")), gaps, predictor_seconds=30.0, pairwise_sweep_seconds=600.0)
    assert summary.chosen == pair and summary.best == pair
    assert (summary.regret, summary.rank, summary.n_partitions) == (0.0, 1, 3)
    assert summary.cost_share == pytest.approx(0.05)
    assert grouper_summary(together, gaps).rank == 3
    with pytest.raises(AnalysisError, match="maximum over all measured partitions"):
        regret(0.5, 0.1)
    with pytest.raises(AnalysisError, match="not measured"):
        grouper_summary((("a", "c"), ("b",)), gaps)


def test_cost_share_refuses_a_zero_sweep():
    assert cost_share(0.0, 10.0) == 0.0
    with pytest.raises(AnalysisError, match="pairwise_sweep_seconds"):
        cost_share(1.0, 0.0)


# --- JSON form ----------------------------------------------------------------------------------


def test_scores_round_trip_through_their_versioned_json_form():
    rng = np.random.default_rng(11)
    M = structure(4, rng)
    score = rank_correlation(predictor(M), seeds(M, 3, 0.3, rng), n_permutations=24, n_bootstrap=50, seed=0)
    assert Score.from_dict(json.loads(json.dumps(score.to_dict()))) == score
    G, _ = negative_pairs_gaps(rng)
    detection = negative_transfer_detection(rng.normal(size=(4, 4)), G)
    assert DetectionScore.from_dict(json.loads(json.dumps(detection.to_dict()))) == detection
    with pytest.raises(AnalysisError, match="version"):
        Score.from_dict({**score.to_dict(), "version": 99})

"""Does a task's predicted affinity to its group-mates track its measured gap in that group?"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.errors import AnalysisError
from harness.scoring.correlation import Alternative, bootstrap_ci, spearman, task_permutation_p
from harness.scoring.score import Score, check_count, check_level, check_predictor


def _check_groups(
    groups: Sequence[Sequence[int]], gaps: Sequence[np.ndarray], T: int
) -> list[tuple[tuple[int, ...], np.ndarray]]:
    if len(groups) != len(gaps):
        raise AnalysisError(f"{len(groups)} groups but gaps for {len(gaps)}; pass one [seeds, members] array per group")
    checked = []
    for g, (members, gap) in enumerate(zip(groups, gaps, strict=True)):
        members = tuple(int(t) for t in members)
        if len(set(members)) != len(members) or any(not 0 <= t < T for t in members):
            raise AnalysisError(f"group {g} {members} repeats a task or names one outside 0..{T - 1}")
        gap = np.asarray(gap, dtype=np.float64)
        if gap.ndim != 2 or gap.shape[1] != len(members) or gap.shape[0] < 1:
            raise AnalysisError(f"gaps of group {g} must have shape [seeds, {len(members)}]; got {gap.shape}")
        if not np.isfinite(gap).any(axis=0).all():
            raise AnalysisError(f"group {g} {members} has a task with no measured gap on any seed")
        if len(members) >= 2:  # a task alone has no group-mates (and gap 0 by definition)
            checked.append((members, gap))
    return checked


def _affinities(P: np.ndarray, groups: list[tuple[tuple[int, ...], np.ndarray]]) -> np.ndarray:
    """x[k] = mean over i's group-mates j of P[i, j], for the k-th (task i, group) point."""
    return np.array([P[i, [j for j in members if j != i]].mean() for members, _ in groups for i in members])


def group_affinity_vs_gap(
    P: np.ndarray,
    groups: Sequence[Sequence[int]],
    gaps: Sequence[np.ndarray],
    *,
    n_permutations: int = 1000,
    n_bootstrap: int = 1000,
    seed: int,
    alternative: Alternative = "greater",
    confidence: float = 0.95,
) -> Score:
    """Spearman rho, over (task, trained group) points, of mean predicted affinity vs measured gap.

    ``groups[g]`` lists the task indices (into P) of trained group g; ``gaps[g]`` has shape
    [seeds, len(groups[g])]: the gap of each member (in that order) on each seed (NaN where a
    seed is missing). For every group of at least 2 tasks and every member i, the point is
    (mean_{j in group, j != i} P[i, j], nanmean over seeds of i's gap). Groups of one are skipped.

    p-value: task-label permutation of P (rows and columns jointly), groups and gaps fixed,
    as in ``rank_correlation``. CI: percentile bootstrap over the (task, group) points. The
    points are not independent (a task sits in several groups, a group gives several points),
    so this CI is optimistic; read it as a guide, and the permutation p-value as the test.
    """
    check_count("n_permutations", n_permutations)
    check_count("n_bootstrap", n_bootstrap)
    check_level("confidence", confidence)
    P = check_predictor(P)
    checked = _check_groups(groups, gaps, P.shape[0])
    y = np.concatenate([np.nanmean(gap, axis=0) for _, gap in checked]) if checked else np.empty(0)
    x = _affinities(P, checked)
    what = "group affinity vs gap"
    value = spearman(x, y, what)
    perm_rng, boot_rng = np.random.default_rng(seed).spawn(2)
    p_value = None
    if n_permutations:
        p_value = task_permutation_p(
            lambda Pp: spearman(_affinities(Pp, checked), y, what),
            P,
            n_permutations=n_permutations,
            alternative=alternative,
            rng=perm_rng,
        )
    ci_low = ci_high = None
    if n_bootstrap:
        ci_low, ci_high = bootstrap_ci(
            lambda rows: spearman(x[rows], y[rows], what),
            x.size,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            rng=boot_rng,
            unit="(task, group) point",
        )
    return Score(
        value=value,
        ci_low=ci_low,
        ci_high=ci_high,
        p_value=p_value,
        n=int(x.size),
        method="Spearman rho: task's mean P to its group-mates vs its seed-mean gap in that group",
        null=f"task-label permutation of P, rows and columns jointly, groups fixed, {alternative}"
        if n_permutations
        else "",
        interval="percentile bootstrap over (task, group) points" if n_bootstrap else "",
        confidence=confidence,
    )

"""Regret of the grouping a predictor picks, and its cost as a share of the pairwise sweep."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from harness.errors import AnalysisError

Partition = tuple[tuple[str, ...], ...]

# Rounding slack for "this partition beats the best": the gaps are means of floats.
_TOLERANCE = 1e-12


def canonical_partition(partition: Sequence[Sequence[str]]) -> Partition:
    """The partition with each group sorted and the groups sorted, so equal partitions compare equal."""
    groups = tuple(sorted(tuple(sorted(group)) for group in partition))
    names = [t for group in groups for t in group]
    if len(set(names)) != len(names) or any(not group for group in groups):
        raise AnalysisError(f"partition {groups} repeats a task or has an empty group")
    return groups


def partition_mean_gap(task_gaps: Mapping[str, float]) -> float:
    """Mean over tasks of each task's (seed-mean) gap in its group of the partition; 0 for a task alone."""
    if not task_gaps:
        raise AnalysisError("a partition's mean gap needs the gap of at least one task; got none")
    values = list(task_gaps.values())
    if not all(math.isfinite(v) for v in values):
        raise AnalysisError(f"a task gap is not finite in {dict(task_gaps)}; every task of the partition needs one")
    return math.fsum(values) / len(values)


def regret(partition_gap: float, best_gap: float) -> float:
    """``best_gap - partition_gap``: how much mean gap the partition gives up against the best measured one.

    0 for the best partition, positive otherwise. Raises when the partition beats ``best_gap``
    (then best_gap was not the best of the measured partitions).
    """
    out = best_gap - partition_gap
    if not math.isfinite(out) or out < -_TOLERANCE:
        raise AnalysisError(
            f"partition mean gap {partition_gap!r} exceeds the 'best' {best_gap!r}; "
            "pass the maximum over all measured partitions, this one included"
        )
    return max(out, 0.0)


def cost_share(predictor_seconds: float, pairwise_sweep_seconds: float) -> float:
    """Seconds to compute the predictor as a share of the full pairwise MTL sweep it would replace."""
    if not (math.isfinite(predictor_seconds) and predictor_seconds >= 0):
        raise AnalysisError(f"predictor_seconds must be a finite number >= 0; got {predictor_seconds!r}")
    if not (math.isfinite(pairwise_sweep_seconds) and pairwise_sweep_seconds > 0):
        raise AnalysisError(f"pairwise_sweep_seconds must be a finite number > 0; got {pairwise_sweep_seconds!r}")
    return predictor_seconds / pairwise_sweep_seconds


@dataclass(frozen=True)
class GrouperSummary:
    """The partition a grouper chose, against every measured partition."""

    chosen: Partition
    chosen_gap: float  # mean gap over tasks of the chosen partition
    best: Partition  # the measured partition with the highest mean gap (first in sorted order on ties)
    best_gap: float
    regret: float  # best_gap - chosen_gap, >= 0
    rank: int  # 1 = best; ties share the better rank
    n_partitions: int
    cost_share: float | None  # predictor seconds / pairwise sweep seconds, when both are given


def grouper_summary(
    chosen: Sequence[Sequence[str]],
    partition_gaps: Mapping[Partition, float],
    *,
    predictor_seconds: float | None = None,
    pairwise_sweep_seconds: float | None = None,
) -> GrouperSummary:
    """Regret and rank of ``chosen`` among the measured partitions (``partition_gaps``: mean gap of each).

    Keys are compared as ``canonical_partition``s; the chosen partition must be among them.
    """
    if not partition_gaps:
        raise AnalysisError("no measured partitions; train at least the chosen partition")
    gaps: dict[Partition, float] = {}
    for key, gap in partition_gaps.items():
        canon = canonical_partition(key)
        if canon in gaps:
            raise AnalysisError(f"partition {canon} is given twice")
        gaps[canon] = float(gap)
    pick = canonical_partition(chosen)
    if pick not in gaps:
        raise AnalysisError(f"chosen partition {pick} was not measured; train it, or score against what was")
    best = max(sorted(gaps), key=lambda p: gaps[p])
    share = None
    if predictor_seconds is not None and pairwise_sweep_seconds is not None:
        share = cost_share(predictor_seconds, pairwise_sweep_seconds)
    return GrouperSummary(
        chosen=pick,
        chosen_gap=gaps[pick],
        best=best,
        best_gap=gaps[best],
        regret=regret(gaps[pick], gaps[best]),
        rank=1 + sum(g > gaps[pick] for g in gaps.values()),
        n_partitions=len(gaps),
        cost_share=share,
    )

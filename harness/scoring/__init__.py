"""Scores of the predictors against the measured gaps: pure functions on arrays, no training.

- ``correlation``: Spearman rho of P against the seed-mean pair gaps; Mantel-style
  task-permutation p-value; bootstrap CI over seeds.
- ``ceiling``: split-half noise ceiling of the gaps across seeds (Spearman-Brown corrected) and
  a score's share of it.
- ``groups``: a task's mean predicted affinity to its group-mates vs its gap in that group.
- ``detection``: precision / recall of the predictor at flagging significant negative transfer.
- ``regret``: regret of a chosen partition against the best measured one; cost share.

Orientation: ``G[s, i, j]`` is the gap of task i trained with j on seed s; ``P[i, j]`` predicts
it (higher = should share). Undefined statistics raise ``AnalysisError``; bad knobs ``ConfigError``.
"""

from harness.scoring.ceiling import fraction_of_ceiling, noise_ceiling
from harness.scoring.correlation import rank_correlation
from harness.scoring.detection import negative_transfer_detection, significant_negative
from harness.scoring.groups import group_affinity_vs_gap
from harness.scoring.regret import (
    GrouperSummary,
    Partition,
    canonical_partition,
    cost_share,
    grouper_summary,
    partition_mean_gap,
    regret,
)
from harness.scoring.score import DetectionScore, Score

__all__ = [
    "DetectionScore",
    "GrouperSummary",
    "Partition",
    "Score",
    "canonical_partition",
    "cost_share",
    "fraction_of_ceiling",
    "group_affinity_vs_gap",
    "grouper_summary",
    "negative_transfer_detection",
    "noise_ceiling",
    "partition_mean_gap",
    "rank_correlation",
    "regret",
    "significant_negative",
]

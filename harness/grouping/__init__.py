"""Task grouping: which tasks should share one multi-task model, decided from a predictor matrix.

Pure functions on numpy arrays; nothing here trains or loads anything.

- ``partition``: validation and canonical order of a partition, enumeration of set partitions.
- ``cluster``: agglomerative clustering of an affinity matrix (scipy), by group count or threshold.
- ``search``: the partition maximising TAG's total affinity (Fifty et al. 2021) or Standley et
  al. 2020's predicted gaps from pair gaps; exhaustive up to a limit, beam search beyond.

Conventions: an affinity matrix is float64 [T, T] in task order, higher = should share, and may
be non-symmetric (TAG: A[i, j] = how much task i's step helps task j). A partition is
``list[list[str]]``, every task exactly once, returned in canonical order (tasks in the given
order inside a group, groups ordered by their first task).
"""

from harness.grouping.cluster import cluster
from harness.grouping.partition import Partition, canonical, check_partition, set_partitions
from harness.grouping.search import (
    SearchResult,
    affinity_score,
    best_partition_by_affinity,
    best_partition_from_pair_gaps,
    group_affinities,
    predicted_group_gaps,
)

__all__ = [
    "Partition",
    "SearchResult",
    "affinity_score",
    "best_partition_by_affinity",
    "best_partition_from_pair_gaps",
    "canonical",
    "check_partition",
    "cluster",
    "group_affinities",
    "predicted_group_gaps",
    "set_partitions",
]

"""Agglomerative clustering of tasks on a predictor matrix (higher = should share), with scipy.

The matrix is symmetrised, S = (A + A^T) / 2 (TAG's A is not symmetric: A[i, j] is what i's
step does to j; clustering needs one number per pair), and turned into a distance

    d(i, j) = m - S[i, j],   m = max over i != j of S[i, j]   (the diagonal is ignored)

so the most similar pair is at distance 0 and every distance is >= 0. For single, complete,
average and weighted linkage the linkage distance of two clusters is then exactly m minus
their linkage similarity (min, max and means commute with x -> m - x), so a threshold can be
given in the affinity's own units. Ward, centroid and median linkage assume Euclidean
distances and are refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.cluster.hierarchy import linkage as scipy_linkage
from scipy.spatial.distance import squareform

from harness.errors import ConfigError
from harness.grouping.partition import Partition, canonical, check_matrix, check_tasks

LINKAGES = ("average", "complete", "single", "weighted")


def _apply_merges(merges: np.ndarray, t: int, count: int) -> list[int]:
    """Cluster label (a root index) of each of the t leaves after the first ``count`` rows of a linkage."""
    parent = list(range(2 * t - 1))

    def root(k: int) -> int:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for row in range(count):
        a, b = int(merges[row, 0]), int(merges[row, 1])
        parent[root(a)] = t + row
        parent[root(b)] = t + row
    return [root(k) for k in range(t)]


def cluster(
    affinity: np.ndarray,
    tasks: Sequence[str],
    *,
    n_groups: int | None = None,
    threshold: float | None = None,
    linkage: str = "average",
) -> Partition:
    """Group ``tasks`` by agglomerative clustering of the [T, T] ``affinity`` (higher = should share).

    Give exactly one of ``n_groups`` (stop at that many groups, 1 <= n_groups <= T) or
    ``threshold`` (keep merging while the linkage similarity of the two closest clusters is
    >= threshold, in the affinity's units after symmetrising; ties at the threshold merge).
    Distance d = m - (A + A^T)/2 with m the largest off-diagonal value (module docstring);
    the diagonal is ignored. ``linkage``: average (UPGMA, default), complete, single or weighted.

    Deterministic and independent of the order of ``tasks``: the matrix is clustered with the
    tasks sorted by name, so ties between equally similar pairs are always broken the same way.
    Returns the canonical partition. Raises ``ConfigError`` for bad arguments and
    ``AnalysisError`` for a non-finite entry.
    """
    names = check_tasks(tasks)
    if (n_groups is None) == (threshold is None):
        raise ConfigError("cluster: give exactly one of n_groups or threshold")
    if linkage not in LINKAGES:
        raise ConfigError(f"cluster: unknown linkage {linkage!r}; use one of {', '.join(LINKAGES)}")
    t = len(names)
    if n_groups is not None and not 1 <= n_groups <= t:
        raise ConfigError(f"cluster: n_groups={n_groups} but there are {t} tasks; use 1 <= n_groups <= {t}")
    if threshold is not None and not math.isfinite(threshold):
        raise ConfigError(f"cluster: threshold={threshold}; use a finite number in the affinity's units")
    a = check_matrix(affinity, names, "affinity")
    if t == 1:
        return [names]
    order = sorted(range(t), key=names.__getitem__)  # cluster in name order: ties independent of task order
    s = (a + a.T)[np.ix_(order, order)] / 2.0
    off = ~np.eye(t, dtype=bool)
    top = float(s[off].max())
    distance = np.where(off, top - s, 0.0)
    merges = scipy_linkage(squareform(distance, checks=False), method=linkage)  # [T-1, 4], heights ascending
    if n_groups is not None:
        count = t - n_groups
    else:
        assert threshold is not None
        tolerance = 1e-12 * max(1.0, abs(top), abs(threshold))  # m - (m - s) need not give back s exactly
        similarity = top - merges[:, 2]
        count = int(np.sum(similarity >= threshold - tolerance))
    labels = _apply_merges(merges, t, count)
    groups: dict[int, list[str]] = {}
    for position, label in zip(order, labels, strict=True):
        groups.setdefault(label, []).append(names[position])
    return canonical(list(groups.values()), names)

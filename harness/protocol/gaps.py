"""Measured MTL - STL gaps: per task per trained group over seeds, the pair-gap matrix, by group size."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from harness.errors import RunError
from harness.protocol.results import GapEstimate, JobResult


def t_interval(values: Sequence[float], level: float = 0.95) -> list[float] | None:
    """Two-sided Student-t confidence interval of the mean (scipy.stats.t); None with fewer than two values."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    if len(x) < 2:
        return None
    half = stats.t.ppf(0.5 + level / 2, df=len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return [float(x.mean() - half), float(x.mean() + half)]


GroupKey = tuple[str, ...]


class Outcomes:
    """The finished jobs of a run, indexed by (kind, tasks, seed) for the gap computations.

    ``stl[(task, seed)]`` and ``groups[frozenset(tasks)][seed]`` (every MTL job: the all-task
    run, pairs, the groupers' groups; one job per group and seed, the first one found).
    """

    def __init__(self, results: Mapping[str, JobResult]) -> None:
        self.stl: dict[tuple[str, int], JobResult] = {}
        self.groups: dict[frozenset[str], dict[int, JobResult]] = {}
        self.order: dict[frozenset[str], GroupKey] = {}
        for r in results.values():
            if r.kind == "stl":
                self.stl[(r.tasks[0], r.seed)] = r
            elif r.kind == "mtl":
                key = frozenset(r.tasks)
                self.groups.setdefault(key, {}).setdefault(r.seed, r)
                self.order.setdefault(key, tuple(r.tasks))

    def trained(self, tasks: Sequence[str]) -> bool:
        return frozenset(tasks) in self.groups


def signed(metric_higher_is_better: bool) -> float:
    return 1.0 if metric_higher_is_better else -1.0


def gap_estimate(
    task: str, group: Sequence[str], seeds: Sequence[int], outcomes: Outcomes, metric: str, higher: bool
) -> GapEstimate:
    """The gap of ``task`` in ``group``, paired by seed; positive = the MTL model scored better."""
    mtl = outcomes.groups.get(frozenset(group), {})
    values, used = [], []
    for seed in seeds:
        s, m = outcomes.stl.get((task, seed)), mtl.get(seed)
        if s is None or m is None:
            continue
        if s.splits[task] != m.splits[task]:  # same rows, same labels: only a bug or edited files get here
            raise RunError(
                f"task {task!r} was scored on different splits by its jobs ({s.splits[task]}, {m.splits[task]})"
            )
        a, b = m.metrics[task][metric], s.metrics[task][metric]
        if a is None or b is None:
            continue
        values.append(signed(higher) * (a - b))
        used.append(seed)
    mean = float(np.mean(values)) if values else None
    return GapEstimate(
        task, list(outcomes.order.get(frozenset(group), tuple(group))), metric, mean, t_interval(values), values, used
    )


def pair_gap_matrix(
    tasks: Sequence[str], seeds: Sequence[int], outcomes: Outcomes, primary: Mapping[str, tuple[str, bool]]
) -> np.ndarray:
    """G [S, T, T]: G[s, i, j] = gap of task i trained with j on seed s; NaN where not measured."""
    T = len(tasks)
    G = np.full((len(seeds), T, T), np.nan)
    for i, a in enumerate(tasks):
        for j, b in enumerate(tasks):
            if i == j or not outcomes.trained((a, b)):
                continue
            est = gap_estimate(a, (a, b), seeds, outcomes, *primary[a])
            if len(est.values) != len(seeds):
                continue  # a pair is measured on every seed or on none (partial seeds are dropped)
            G[:, i, j] = est.values
    return G


def gap_by_size(groups: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean gap over (task, group) points per group size: how much sharing costs as groups grow."""
    by: dict[int, list[float]] = {}
    for g in groups:
        for est in g["gaps"].values():
            if est["mean"] is not None:
                by.setdefault(len(g["tasks"]), []).append(est["mean"])
    return [
        {"size": size, "points": len(v), "mean_gap": float(np.mean(v)), "min_gap": float(np.min(v))}
        for size, v in sorted(by.items())
    ]

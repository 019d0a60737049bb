"""Search for the partition of tasks that maximises a sum of per-group scores.

Both objectives here are additive over groups: the score of a partition is the sum of a score
g(G) of each of its groups, and a singleton scores 0. The search is exhaustive over all set
partitions (Bell(T) of them, at most ``max_groups`` groups) when T <= ``exhaustive_limit``, a
beam search beyond: tasks are placed one at a time in the given order, each state of the beam
a partition of the tasks placed so far, scored exactly on them; every state is extended by
putting the next task in each existing group or a new one, and the ``beam_width`` best
(ties: the earlier restricted-growth string) are kept. The beam is a heuristic: it can miss
the optimum when the tasks seen first mislead it.

Objectives:

- ``best_partition_by_affinity``: TAG's total inter-task affinity (Fifty et al. 2021, sec. 3.2).
- ``best_partition_from_pair_gaps``: Standley et al. 2020's higher-order approximation (sec. 4).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from harness.errors import AnalysisError, ConfigError
from harness.grouping.partition import (
    Partition,
    canonical,
    check_matrix,
    check_tasks,
    groups_of,
    partition_problem,
    set_partitions,
)

# Score of the group of task indices in a bitmask; None when the group is not allowed.
GroupScore = Callable[[int], float | None]


@dataclass(frozen=True)
class SearchResult:
    """The best partition found, its score, and how it was found."""

    partition: Partition  # canonical order
    score: float  # the objective at ``partition``, recomputed with the public scoring function
    objective: str  # "tag_total_affinity" or "mean_predicted_gap"
    method: Literal["exhaustive", "beam"]
    evaluated: int  # exhaustive: complete partitions enumerated; beam: partial partitions scored

    def to_dict(self) -> dict[str, object]:
        """The JSON form (version 1)."""
        return {
            "version": 1,
            "partition": [list(group) for group in self.partition],
            "score": self.score,
            "objective": self.objective,
            "method": self.method,
            "evaluated": self.evaluated,
        }


def _members(mask: int) -> list[int]:
    return [k for k in range(mask.bit_length()) if mask >> k & 1]


def _exhaustive(t: int, score: GroupScore, max_groups: int) -> tuple[tuple[int, ...] | None, int]:
    best, best_labels, evaluated = -np.inf, None, 0
    for labels in set_partitions(t, max_groups):
        evaluated += 1
        masks = [0] * (max(labels) + 1)
        for k, block in enumerate(labels):
            masks[block] |= 1 << k
        scores = [score(mask) for mask in masks]
        if any(s is None for s in scores):
            continue
        total = sum(s for s in scores if s is not None)
        if total > best:  # strict: on a tie the earlier string (fewer, larger groups first) stays
            best, best_labels = total, labels
    return best_labels, evaluated


def _beam(t: int, score: GroupScore, max_groups: int, width: int) -> tuple[tuple[int, ...] | None, int]:
    # A state: (score of the partial partition, its restricted-growth string, one bitmask per group).
    first = score(1)
    states: list[tuple[float, tuple[int, ...], tuple[int, ...]]] = [] if first is None else [(first, (0,), (1,))]
    evaluated = len(states)
    for k in range(1, t):
        bit = 1 << k
        candidates: list[tuple[float, tuple[int, ...], tuple[int, ...]]] = []
        for total, labels, masks in states:
            for block, mask in enumerate(masks):
                old, new = score(mask), score(mask | bit)
                if new is not None and old is not None:
                    grown = masks[:block] + (mask | bit,) + masks[block + 1 :]
                    candidates.append((total - old + new, labels + (block,), grown))
            alone = score(bit)
            if len(masks) < max_groups and alone is not None:
                candidates.append((total + alone, labels + (len(masks),), masks + (bit,)))
        evaluated += len(candidates)
        candidates.sort(key=lambda c: (-c[0], c[1]))
        states = candidates[:width]
    return (states[0][1] if states else None), evaluated


def search_partitions(
    t: int, group_score: GroupScore, *, max_groups: int | None, exhaustive_limit: int, beam_width: int
) -> tuple[tuple[int, ...], Literal["exhaustive", "beam"], int]:
    """The restricted-growth string maximising the sum of ``group_score`` over groups, the method, and the count.

    ``group_score(mask)`` scores the group of task indices set in ``mask`` (None: not allowed).
    Raises ``ConfigError`` for bad limits and ``AnalysisError`` when no partition is allowed.
    """
    if max_groups is not None and max_groups < 1:
        raise ConfigError(f"max_groups={max_groups}; use a positive number of groups, or None for no limit")
    if exhaustive_limit < 0 or beam_width < 1:
        raise ConfigError(f"exhaustive_limit={exhaustive_limit}, beam_width={beam_width}; use >= 0 and >= 1")
    cap = t if max_groups is None else min(max_groups, t)
    cache: dict[int, float | None] = {}

    def cached(mask: int) -> float | None:
        if mask not in cache:
            cache[mask] = group_score(mask)
        return cache[mask]

    if t <= exhaustive_limit:
        method: Literal["exhaustive", "beam"] = "exhaustive"
        labels, evaluated = _exhaustive(t, cached, cap)
    else:
        method = "beam"
        labels, evaluated = _beam(t, cached, cap, beam_width)
    if labels is None:
        raise AnalysisError(
            f"no partition into at most {cap} groups avoids the unmeasured pairs; measure them or raise max_groups"
        )
    return labels, method, evaluated


def _checked_groups(partition: Sequence[Sequence[str]], names: list[str]) -> Partition:
    problem = partition_problem(partition, names)
    if problem is not None:
        raise ConfigError(f"partition argument: {problem}")
    return canonical(partition, names)


def group_affinities(
    affinity: np.ndarray, tasks: Sequence[str], partition: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Each task's TAG score in its group: the mean of affinity[j, i] over its group-mates j != i; 0 alone.

    ``affinity[i, j]`` = how much a step on task i helps task j (``harness.analyses.tag``), so
    column i is what the others do for i. A singleton scores 0, "no help, no harm", rather than
    its self-affinity: the TAG diagonal is a task's own lookahead improvement, on another scale
    than the cross terms, and would make splitting everything look best. The diagonal is ignored.
    """
    names = check_tasks(tasks)
    a = check_matrix(affinity, names, "affinity")
    index = {name: k for k, name in enumerate(names)}
    scores: dict[str, float] = {}
    for group in _checked_groups(partition, names):
        rows = [index[name] for name in group]
        for i in rows:
            mates = [j for j in rows if j != i]
            scores[names[i]] = float(np.mean(a[mates, i])) if mates else 0.0
    return {name: scores[name] for name in names}


def affinity_score(affinity: np.ndarray, tasks: Sequence[str], partition: Sequence[Sequence[str]]) -> float:
    """TAG's total inter-task affinity of a partition: the sum over tasks of ``group_affinities``."""
    return float(sum(group_affinities(affinity, tasks, partition).values()))


def best_partition_by_affinity(
    affinity: np.ndarray,
    tasks: Sequence[str],
    *,
    max_groups: int | None = None,
    exhaustive_limit: int = 9,
    beam_width: int = 64,
) -> SearchResult:
    """The partition maximising TAG's total inter-task affinity (Fifty et al. 2021, sec. 3.2).

    Score = sum over tasks i of the mean of affinity[j, i] over i's group-mates j (0 for a
    singleton; see ``group_affinities``). Exhaustive for T <= ``exhaustive_limit``, beam search
    of width ``beam_width`` beyond (module docstring); at most ``max_groups`` groups.

    The "partition" variant: every task is in exactly one group. TAG proper chooses a fixed
    number of possibly overlapping groups (one model each) and serves every task by the chosen
    group where it scores best, so a task may be trained in several models; that is not this.
    """
    names = check_tasks(tasks)
    a = check_matrix(affinity, names, "affinity")

    def group_score(mask: int) -> float:
        rows = _members(mask)
        if len(rows) < 2:
            return 0.0
        block = a[np.ix_(rows, rows)]
        return float((block.sum() - np.trace(block)) / (len(rows) - 1))

    labels, method, evaluated = search_partitions(
        len(names), group_score, max_groups=max_groups, exhaustive_limit=exhaustive_limit, beam_width=beam_width
    )
    partition = groups_of(labels, names)
    score = affinity_score(a, names, partition)
    return SearchResult(partition, score, "tag_total_affinity", method, evaluated)


def predicted_group_gaps(
    pair_gaps: np.ndarray, tasks: Sequence[str], partition: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Standley et al. 2020's higher-order approximation of each task's gap in its group.

    ``pair_gaps[i, j]`` = the measured gap of task i (MTL minus STL, higher = better) when
    trained in a pair with task j. Predicted gap of i in group G = the mean of pair_gaps[i, j]
    over j in G, j != i; 0 for a singleton (it is the STL model). The diagonal is ignored and
    NaN marks an unmeasured pair: ``AnalysisError`` when the partition needs one.
    """
    names = check_tasks(tasks)
    p = check_matrix(pair_gaps, names, "pair_gaps", unmeasured_nan=True)
    index = {name: k for k, name in enumerate(names)}
    gaps: dict[str, float] = {}
    for group in _checked_groups(partition, names):
        rows = [index[name] for name in group]
        for i in rows:
            mates = [j for j in rows if j != i]
            for j in mates:
                if np.isnan(p[i, j]):
                    raise AnalysisError(
                        f"pair_gaps[{names[i]!r}, {names[j]!r}] is NaN (unmeasured) but the partition pairs them; "
                        "measure the pair or group them apart"
                    )
            gaps[names[i]] = float(np.mean(p[i, mates])) if mates else 0.0
    return {name: gaps[name] for name in names}


def best_partition_from_pair_gaps(
    pair_gaps: np.ndarray,
    tasks: Sequence[str],
    *,
    max_groups: int | None = None,
    exhaustive_limit: int = 9,
    beam_width: int = 64,
) -> SearchResult:
    """The partition maximising the mean over tasks of ``predicted_group_gaps`` (Standley et al. 2020).

    Same search as ``best_partition_by_affinity`` (exhaustive up to ``exhaustive_limit`` tasks,
    beam beyond). Groups that would need an unmeasured (NaN) pair are never chosen; singletons
    predict 0, so with only negative pair gaps every task ends up alone (given enough groups).
    """
    names = check_tasks(tasks)
    p = check_matrix(pair_gaps, names, "pair_gaps", unmeasured_nan=True)
    t = len(names)

    def group_score(mask: int) -> float | None:
        rows = _members(mask)
        if len(rows) < 2:
            return 0.0
        block = p[np.ix_(rows, rows)]
        off = ~np.eye(len(rows), dtype=bool)
        if np.isnan(block[off]).any():
            return None
        return float(block[off].sum() / (len(rows) - 1) / t)

    labels, method, evaluated = search_partitions(
        t, group_score, max_groups=max_groups, exhaustive_limit=exhaustive_limit, beam_width=beam_width
    )
    partition = groups_of(labels, names)
    gaps = predicted_group_gaps(p, names, partition)
    score = float(np.mean([gaps[name] for name in names]))
    return SearchResult(partition, score, "mean_predicted_gap", method, evaluated)

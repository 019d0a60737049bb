"""Task grouping: partitions, clustering, and the TAG / Standley partition searches on planted structures."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import AnalysisError, ConfigError, PluginError
from harness.grouping import (
    affinity_score,
    best_partition_by_affinity,
    best_partition_from_pair_gaps,
    check_partition,
    cluster,
    group_affinities,
    predicted_group_gaps,
    set_partitions,
)

SOURCE = "grouper 'x' of plugin 'y'"


def planted(labels: list[int], seed: int = 0, within: float = 1.0, across: float = -0.5, noise: float = 0.1):
    """A non-symmetric affinity matrix: `within` inside a block, `across` between blocks, plus noise."""
    rng = np.random.default_rng(seed)
    lab = np.asarray(labels)
    a = np.where(lab[:, None] == lab[None, :], within, across) + noise * rng.standard_normal((len(lab), len(lab)))
    tasks = [f"t{k:02d}" for k in range(len(lab))]
    blocks = [[tasks[k] for k in range(len(lab)) if lab[k] == b] for b in dict.fromkeys(labels)]
    return a, tasks, blocks


def as_sets(partition):
    return {frozenset(group) for group in partition}


# set partitions


def test_set_partition_counts_are_bell_numbers():
    bell = [1, 1, 2, 5, 15, 52, 203, 877, 4140, 21147]
    assert [sum(1 for _ in set_partitions(n)) for n in range(10)] == bell


def test_set_partitions_are_distinct_restricted_growth_strings_and_respect_max_blocks():
    strings = list(set_partitions(5))
    assert len(set(strings)) == len(strings) and strings[0] == (0, 0, 0, 0, 0)
    for s in strings:
        assert s[0] == 0 and all(s[k] <= max(s[:k]) + 1 for k in range(1, 5))
    # Stirling numbers of the second kind: S(5, 1) + S(5, 2) = 1 + 15
    assert sum(1 for _ in set_partitions(5, max_blocks=2)) == 16
    assert all(max(s) < 2 for s in set_partitions(5, max_blocks=2))


# check_partition


TASKS = ["a", "b", "c", "d"]


def test_check_partition_returns_canonical_order():
    assert check_partition([["d", "b"], ["c", "a"]], TASKS, SOURCE) == [["a", "c"], ["b", "d"]]
    assert check_partition((("c",), ("b", "a", "d")), TASKS, SOURCE) == [["a", "b", "d"], ["c"]]


@pytest.mark.parametrize(
    ("partition", "message"),
    [
        ([["a", "b"], ["c"]], "task 'd' is in no group"),
        ([["a", "b"], ["c", "d", "b"]], "task 'b' is in group 0 and again in group 1"),
        ([["a", "b", "a"], ["c", "d"]], "task 'a' is in group 0 and again in it"),
        ([["a", "b"], ["c", "d", "e"]], "group 1 names unknown task 'e'"),
        ([["a", "b"], [], ["c", "d"]], "group 1 is empty"),
        ([["a", "b"], "cd"], "group 1 is 'cd', not a list of task names"),
        ("abcd", "got str, not a list of groups"),
    ],
)
def test_check_partition_names_the_problem_and_the_source(partition, message):
    with pytest.raises(PluginError, match=message) as info:
        check_partition(partition, TASKS, SOURCE)
    text = str(info.value)
    assert text.startswith(SOURCE + ": ") and "\n" not in text


def test_repeated_task_names_are_a_config_error():
    with pytest.raises(ConfigError, match="listed twice"):
        check_partition([["a"], ["a"]], ["a", "a"], SOURCE)


# cluster


BLOCKS = [0, 1, 2, 0, 1, 2, 0, 1]  # interleaved, so no block is contiguous in task order


def test_cluster_recovers_planted_blocks_by_count_and_by_threshold():
    a, tasks, blocks = planted(BLOCKS)
    assert cluster(a, tasks, n_groups=3) == blocks
    assert cluster(a, tasks, threshold=0.5) == blocks  # within ~1, across ~-0.5
    for linkage in ("single", "complete", "weighted"):
        assert cluster(a, tasks, n_groups=3, linkage=linkage) == blocks
    assert cluster(a, tasks, n_groups=1) == [tasks]
    assert cluster(a, tasks, n_groups=len(tasks)) == [[t] for t in tasks]


def test_cluster_threshold_is_in_affinity_units():
    # Symmetric: {a, b} at 0.9, c joins at average linkage (0.3 + 0.5) / 2 = 0.4.
    a = np.array([[0.0, 0.9, 0.3], [0.9, 0.0, 0.5], [0.3, 0.5, 0.0]])
    tasks = ["a", "b", "c"]
    assert cluster(a, tasks, threshold=0.95) == [["a"], ["b"], ["c"]]
    assert cluster(a, tasks, threshold=0.9) == [["a", "b"], ["c"]]  # a tie at the threshold merges
    assert cluster(a, tasks, threshold=0.41) == [["a", "b"], ["c"]]
    assert cluster(a, tasks, threshold=0.4) == [tasks]
    # Non-symmetric input is symmetrised: (1.6 + 0.2) / 2 = 0.9 as above.
    skew = a.copy()
    skew[0, 1], skew[1, 0] = 1.6, 0.2
    assert cluster(skew, tasks, threshold=0.9) == [["a", "b"], ["c"]]


def test_cluster_does_not_depend_on_task_order():
    a, tasks, _ = planted(BLOCKS, seed=3, noise=0.4)
    expected = as_sets(cluster(a, tasks, n_groups=3))
    perm = np.random.default_rng(7).permutation(len(tasks))
    shuffled = [tasks[k] for k in perm]
    assert as_sets(cluster(a[np.ix_(perm, perm)], shuffled, n_groups=3)) == expected
    # Ties everywhere: the result still depends on the names only.
    flat = np.ones((4, 4))
    assert as_sets(cluster(flat, TASKS, n_groups=2)) == as_sets(cluster(flat, TASKS[::-1], n_groups=2))


def test_cluster_argument_checks():
    a, tasks, _ = planted(BLOCKS)
    with pytest.raises(ConfigError, match="exactly one of n_groups or threshold"):
        cluster(a, tasks)
    with pytest.raises(ConfigError, match="exactly one of n_groups or threshold"):
        cluster(a, tasks, n_groups=2, threshold=0.5)
    with pytest.raises(ConfigError, match="n_groups=9"):
        cluster(a, tasks, n_groups=9)
    with pytest.raises(ConfigError, match="unknown linkage 'ward'"):
        cluster(a, tasks, n_groups=2, linkage="ward")
    with pytest.raises(ConfigError, match=r"shape \(8, 8\) but there are 3 tasks"):
        cluster(a, tasks[:3], n_groups=2)
    bad = a.copy()
    bad[1, 2] = np.nan
    with pytest.raises(AnalysisError, match=r"affinity\['t01', 't02'\] is nan"):
        cluster(bad, tasks, n_groups=2)
    assert cluster(np.zeros((1, 1)), ["solo"], threshold=0.0) == [["solo"]]


# TAG affinity search


def test_group_affinity_reads_the_column_what_the_others_do_for_a_task():
    # a's step helps b (A[a, b] = 1); b's step hurts a (A[b, a] = -3).
    a = np.array([[5.0, 1.0], [-3.0, 5.0]])
    assert group_affinities(a, ["a", "b"], [["a", "b"]]) == {"a": -3.0, "b": 1.0}
    assert group_affinities(a, ["a", "b"], [["b"], ["a"]]) == {"a": 0.0, "b": 0.0}  # singletons: 0, not the diagonal
    assert affinity_score(a, ["a", "b"], [["a", "b"]]) == -2.0
    assert best_partition_by_affinity(a, ["a", "b"]).partition == [["a"], ["b"]]


def test_exhaustive_affinity_search_finds_planted_blocks_and_reports_its_score():
    a, tasks, blocks = planted(BLOCKS)
    result = best_partition_by_affinity(a, tasks)
    assert result.method == "exhaustive" and result.evaluated == 4140  # Bell(8)
    assert result.partition == blocks
    assert result.score == affinity_score(a, tasks, result.partition)
    # brute force over the public scoring function agrees
    best = max(
        affinity_score(a, tasks, [[tasks[k] for k in range(8) if s[k] == b] for b in range(max(s) + 1)])
        for s in set_partitions(8)
    )
    assert result.score == pytest.approx(best, abs=1e-12)


@pytest.mark.parametrize(
    ("labels", "max_groups"), [([0, 1, 2, 3, 0, 1, 2, 3, 0, 1], None), ([0, 1, 2] * 3 + [0, 1], 3)]
)
def test_beam_search_beyond_the_limit_matches_exhaustive(labels, max_groups):
    a, tasks, blocks = planted(labels, seed=1, noise=0.3)
    beam = best_partition_by_affinity(a, tasks, max_groups=max_groups)
    assert beam.method == "beam" and len(tasks) > 9
    exact = best_partition_by_affinity(a, tasks, max_groups=max_groups, exhaustive_limit=len(tasks))
    assert exact.method == "exhaustive"
    assert beam.partition == exact.partition == blocks
    assert beam.score == exact.score == affinity_score(a, tasks, blocks)


def test_max_groups_is_respected():
    a, tasks, blocks = planted(BLOCKS)
    for max_groups in (1, 2):
        for limit in (9, 0):  # exhaustive, beam
            result = best_partition_by_affinity(a, tasks, max_groups=max_groups, exhaustive_limit=limit)
            assert len(result.partition) <= max_groups
            assert result.score == affinity_score(a, tasks, result.partition)
    exact = best_partition_by_affinity(a, tasks, max_groups=2)
    assert exact.evaluated == 1 + 127  # S(8, 1) + S(8, 2)
    with pytest.raises(ConfigError, match="max_groups=0"):
        best_partition_by_affinity(a, tasks, max_groups=0)


def test_search_result_json_form():
    a, tasks, blocks = planted([0, 0, 1])
    data = best_partition_by_affinity(a, tasks).to_dict()
    assert data["version"] == 1 and data["partition"] == blocks and data["objective"] == "tag_total_affinity"


# Standley pair gaps


def pair_matrix(values: dict[tuple[str, str], float], tasks: list[str]) -> np.ndarray:
    index = {t: k for k, t in enumerate(tasks)}
    p = np.full((len(tasks), len(tasks)), np.nan)
    for (i, j), v in values.items():
        p[index[i], index[j]] = v
    return p


def test_pair_gap_search_finds_the_hand_computed_best():
    # a and b help each other (+2), c and d a little (+1), every cross pair hurts (-1).
    # {a,b}{c,d}: gaps 2, 2, 1, 1 -> mean 1.5.  All together: a = (2 - 1 - 1) / 3 = 0, c = (1 - 2) / 3 -> mean 0.
    # {a,b}{c}{d}: 2, 2, 0, 0 -> 1.0.  {a,b,c}{d}: a = (2 - 1) / 2 = 0.5, b = 0.5, c = -1, d = 0 -> 0.
    tasks = ["a", "b", "c", "d"]
    p = np.full((4, 4), -1.0)
    p[0, 1] = p[1, 0] = 2.0
    p[2, 3] = p[3, 2] = 1.0
    np.fill_diagonal(p, np.nan)
    assert predicted_group_gaps(p, tasks, [["a", "b"], ["c", "d"]]) == {"a": 2.0, "b": 2.0, "c": 1.0, "d": 1.0}
    assert predicted_group_gaps(p, tasks, [["a", "b", "c", "d"]])["c"] == pytest.approx(-1 / 3)
    assert predicted_group_gaps(p, tasks, [["a", "b", "c"], ["d"]]) == {"a": 0.5, "b": 0.5, "c": -1.0, "d": 0.0}
    result = best_partition_from_pair_gaps(p, tasks)
    assert result.partition == [["a", "b"], ["c", "d"]]
    assert result.score == 1.5 and result.method == "exhaustive" and result.objective == "mean_predicted_gap"
    # one group allowed: the only choice
    assert best_partition_from_pair_gaps(p, tasks, max_groups=1).score == pytest.approx(-1 / 6)


def test_negative_pair_gaps_leave_every_task_alone():
    rng = np.random.default_rng(0)
    p = -rng.uniform(0.1, 1.0, size=(6, 6))
    tasks = list("abcdef")
    for limit in (9, 0):
        result = best_partition_from_pair_gaps(p, tasks, exhaustive_limit=limit)
        assert result.partition == [[t] for t in tasks] and result.score == 0.0


def test_unmeasured_pairs_are_errors_when_needed_and_avoided_by_the_search():
    tasks = ["a", "b", "c"]
    p = pair_matrix({("a", "b"): 1.0, ("b", "a"): 1.0, ("b", "c"): 3.0, ("c", "b"): 3.0}, tasks)  # a-c unmeasured
    with pytest.raises(AnalysisError, match=r"pair_gaps\['a', 'c'\] is NaN \(unmeasured\)"):
        predicted_group_gaps(p, tasks, [tasks])
    assert predicted_group_gaps(p, tasks, [["a"], ["b", "c"]]) == {"a": 0.0, "b": 3.0, "c": 3.0}
    for limit in (9, 0):
        assert best_partition_from_pair_gaps(p, tasks, exhaustive_limit=limit).partition == [["a"], ["b", "c"]]
    with pytest.raises(AnalysisError, match="no partition into at most 1 groups"):
        best_partition_from_pair_gaps(p, tasks, max_groups=1)
    p[0, 1] = np.inf
    with pytest.raises(AnalysisError, match="NaN if unmeasured"):
        predicted_group_gaps(p, tasks, [["a"], ["b"], ["c"]])
    with pytest.raises(ConfigError, match="partition argument: task 'c' is in no group"):
        predicted_group_gaps(np.zeros((3, 3)), tasks, [["a", "b"]])

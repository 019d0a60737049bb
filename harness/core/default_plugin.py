"""The core's own metrics, groupers, predictors and input reader, registered through the public hooks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.api import Grouper, InputReader, Metric, Predictor, Register, TaskSpec
from harness.core.metrics import METRICS, metric_fn
from harness.hookspecs import hookimpl


@hookimpl
def register_metrics(register: Register) -> None:
    for name, (higher, problem_types, description) in METRICS.items():
        register(Metric(name, metric_fn(name), higher, description, problem_types=problem_types))


def _all_in_one(tasks: Sequence[TaskSpec], context: Mapping[str, Any]) -> list[list[str]]:
    return [[t.name for t in tasks]]


def _singletons(tasks: Sequence[TaskSpec], context: Mapping[str, Any]) -> list[list[str]]:
    return [[t.name] for t in tasks]


def _by_input_group(tasks: Sequence[TaskSpec], context: Mapping[str, Any]) -> list[list[str]]:
    from harness.data.streams import make_streams  # the training path's own grouping by input_group

    return [list(stream.task_names) for stream in make_streams(tasks)]


def _matrix(context: Mapping[str, Any], grouper: str) -> tuple[str, Any]:
    from harness.errors import ConfigError

    name = context.get("predictor")
    matrices = context.get("matrices", {})
    if not name:
        raise ConfigError(
            f"grouper {grouper!r} needs a predictor: write {grouper}:PREDICTOR, e.g. {grouper}:cka_linear"
        )
    if name not in matrices:
        known = ", ".join(sorted(matrices)) or "none computed in this run"
        raise ConfigError(f"grouper {grouper}:{name}: no predictor matrix {name!r} (available: {known})")
    return name, matrices[name]


def _cluster(tasks: Sequence[TaskSpec], context: Mapping[str, Any]) -> list[list[str]]:
    """Average-linkage clustering (scipy) into about sqrt(T) groups."""
    import math

    from harness.grouping import cluster

    _, matrix = _matrix(context, "cluster")
    names = [t.name for t in tasks]
    return [list(g) for g in cluster(_finite(matrix), names, n_groups=max(1, round(math.sqrt(len(names)))))]


def _finite(matrix: Any) -> Any:
    import numpy as np

    m = np.array(matrix, dtype=np.float64)
    off = ~np.eye(len(m), dtype=bool)
    finite = m[off & np.isfinite(m)]
    m[~np.isfinite(m) & off] = finite.min() if finite.size else 0.0  # undefined = least affinity
    return m


def _affinity(tasks: Sequence[TaskSpec], context: Mapping[str, Any]) -> list[list[str]]:
    """TAG's selection: the partition maximising each task's mean affinity to its group-mates."""
    from harness.grouping import best_partition_by_affinity

    _, matrix = _matrix(context, "affinity")
    # P[i, j] = benefit to i from j; the search reads affinity[j, i] = how much j helps i
    found = best_partition_by_affinity(_finite(matrix).T, [t.name for t in tasks])
    return [list(g) for g in found.partition]


def _pair_gaps(tasks: Sequence[TaskSpec], context: Mapping[str, Any]) -> list[list[str]]:
    """Standley et al. 2020: a group's predicted gap for task i = mean of i's measured pair gaps."""
    from harness.errors import ConfigError
    from harness.grouping import best_partition_from_pair_gaps

    gaps = context.get("pair_gaps")
    if gaps is None:
        raise ConfigError("grouper 'pair_gaps' needs the measured pair gaps: run with --pairs")
    found = best_partition_from_pair_gaps(gaps, [t.name for t in tasks])
    return [list(g) for g in found.partition]


@hookimpl
def register_groupers(register: Register) -> None:
    register(Grouper("all", _all_in_one, "every selected task in one group"))
    register(Grouper("singletons", _singletons, "each task alone (no sharing)"))
    register(Grouper("input_group", _by_input_group, "tasks that label the same inputs share a model"))
    register(Grouper("cluster", _cluster, "average-linkage clustering of a predictor, ~sqrt(T) groups", "predictor"))
    register(
        Grouper(
            "affinity",
            _affinity,
            "TAG's selection on a predictor: maximise each task's mean affinity to its group-mates "
            "(exhaustive up to 9 tasks, beam search beyond)",
            "predictor",
        )
    )
    register(
        Grouper(
            "pair_gaps",
            _pair_gaps,
            "Standley et al. 2020: best partition by the mean of each task's measured pair gaps (--pairs)",
            "pair_gaps",
        )
    )


def _builtin(name: str, **kwargs: Any) -> Any:
    import functools

    from harness.analyses import predictors

    return functools.partial(getattr(predictors, name), **kwargs)


@hookimpl
def register_predictors(register: Register) -> None:
    register(Predictor("cka_linear", _builtin("cka"), "linear CKA of the STL models, mean over layers", ("features",)))
    register(
        Predictor(
            "cka_linear_min",
            _builtin("cka", summary="min"),
            "linear CKA of the STL models, minimum over layers (similar across ALL layers)",
            ("features",),
        )
    )
    register(
        Predictor(
            "cka_debiased",
            _builtin("cka", debiased=True),
            "debiased linear CKA (unbiased HSIC), mean over layers",
            ("features",),
        )
    )
    register(
        Predictor(
            "cka_standardized",
            _builtin("cka", standardize=True),
            "linear CKA on z-scored features (outlier dimensions tamed), mean over layers",
            ("features",),
        )
    )
    register(
        Predictor(
            "grad_cosine_init",
            _builtin("gradient_cosine_init"),
            "gradient cosine on the shared encoder at the starting encoder (before any training)",
            ("init_gradients",),
        )
    )
    register(
        Predictor(
            "grad_cosine_train",
            _builtin("gradient_cosine_training"),
            "gradient cosine on the shared encoder during the all-task MTL run",
            ("training",),
        )
    )
    register(
        Predictor(
            "tag",
            _builtin("tag_affinity"),
            "TAG lookahead affinity during the all-task MTL run (Fifty et al. 2021)",
            ("training",),
            symmetric=False,
        )
    )
    register(
        Predictor(
            "label_nmi",
            _builtin("label_nmi"),
            "baseline: NMI of the training labels on shared inputs",
            ("train_labels",),
        )
    )
    register(
        Predictor(
            "size_ratio", _builtin("size_ratio"), "baseline: min/max ratio of training-set sizes", ("train_sizes",)
        )
    )
    register(Predictor("random", _builtin("random_matrix"), "baseline: a seeded random symmetric matrix"))


@hookimpl
def register_input_readers(register: Register) -> None:
    from harness.inference.records import read_row

    register(InputReader("rows", read_row, "a record (JSONL object, TSV/CSV row) holding the task's text fields"))
